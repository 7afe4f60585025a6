/** The channel adapter contract: how chatWorkflow sends replies (imported as types only). */
import type { ChatAgent, ChatReplyMeta } from './chat';

export interface DeliverReplyInput {
  channel: string;
  chatId: string;
  /** Stable per turn (`<channel>:<chatId>:<turn>`): a retried delivery overwrites, never duplicates. */
  replyId: string;
  turn: number;
  text: string;
  agent: ChatAgent;
  /** The channel message ids this reply answers. */
  inReplyTo: string[];
  /** How the reply was chosen and written (kept with it in the outbox). */
  meta?: ChatReplyMeta;
}

export interface DeliverReplyResult {
  via: 'callback' | 'outbox';
  deliveredAt: number;
}

/** A reply as kept in the outbox (DynamoDB `chats`), readable at `GET /chats/:chatId/messages`. */
export interface OutboxMessage {
  id: string;
  turn: number;
  text: string;
  agent: ChatAgent;
  inReplyTo: string[];
  via: 'callback' | 'outbox';
  createdAt: number;
  /** How the reply was chosen and written: router path, pick, writer, a replaced draft. */
  meta?: ChatReplyMeta;
}

export interface ChannelActivities {
  /** Posts the reply to CHANNEL_CALLBACK_URL (signed), or keeps it in the local outbox; always records it. */
  deliverChatReply(input: DeliverReplyInput): Promise<DeliverReplyResult>;
}
