/**
 * Chat rows in the generic DynamoDB table `chats`: one partition per conversation holding the state row and
 * one row per reply (the outbox), so `GET /chats/:chatId` and `.../messages` are single-partition reads.
 */
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/clients';
import type { OutboxMessage } from '../../contracts/channel';
import type { ChatState } from '../../contracts/chat';

export const chatPk = (channel: string, chatId: string) => `chat#${channel}#${chatId}`;
const STATE_SK = 'state';
/** Zero-padded turn so replies sort in conversation order. */
export const replySk = (turn: number) => `reply#${String(turn).padStart(10, '0')}`;

export async function readChatState(storage: Storage, channel: string, chatId: string): Promise<ChatState | undefined> {
  const res = await storage.doc.send(
    new GetCommand({ TableName: storage.table('chats'), Key: { pk: chatPk(channel, chatId), sk: STATE_SK } }),
  );
  return (res.Item?.state as ChatState | undefined) ?? undefined;
}

export async function writeChatState(storage: Storage, state: ChatState): Promise<void> {
  await storage.doc.send(
    new PutCommand({
      TableName: storage.table('chats'),
      Item: { pk: chatPk(state.channel, state.chatId), sk: STATE_SK, state, updatedAt: state.updatedAt },
    }),
  );
}

export async function writeOutboxMessage(
  storage: Storage,
  channel: string,
  chatId: string,
  msg: OutboxMessage,
): Promise<void> {
  await storage.doc.send(
    new PutCommand({
      TableName: storage.table('chats'),
      Item: { pk: chatPk(channel, chatId), sk: replySk(msg.turn), message: msg },
    }),
  );
}

/** Replies in turn order, at most `limit`, starting after turn `afterTurn` (pagination). */
export async function listOutboxMessages(
  storage: Storage,
  channel: string,
  chatId: string,
  opts: { limit: number; afterTurn?: number },
): Promise<OutboxMessage[]> {
  const res = await storage.doc.send(
    new QueryCommand({
      TableName: storage.table('chats'),
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
      ExpressionAttributeValues: {
        ':pk': chatPk(channel, chatId),
        ':from': replySk((opts.afterTurn ?? 0) + 1),
        ':to': 'reply#~',
      },
      Limit: opts.limit,
    }),
  );
  return (res.Items ?? []).map((i) => i.message as OutboxMessage);
}
