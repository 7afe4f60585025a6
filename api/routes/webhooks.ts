/**
 * `POST /webhooks/channel`: the messaging channel's webhook. Authenticated by an HMAC-SHA256 signature over
 * the raw body (not an API key), so this router parses its own raw body and is mounted before the JSON
 * parser. Each customer or manager message is delivered by signalWithStart to `chat-<channel>-<chatId>`.
 */
import { randomUUID } from 'node:crypto';
import express, { Router } from 'express';
import { z } from 'zod';

import type { Config } from '../../common/config';
import { HttpError } from '../../common/errors';
import { ORCHESTRATOR_QUEUE, normalizeModel } from '../../common/task-queues';

import { SIGNATURE_HEADER, verifySignature } from '../../lib/channel/signature';
import { chatMessageSignal } from '../../contracts/definitions';
import type { ChatInboundMessage, ChatWorkflowInput } from '../../contracts/chat';
import type { chatWorkflow } from '../../workflows/chat/chat-workflow';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { registerRoute } from '../openapi';
import { SearchAttributeKey } from '../../common/search-attributes';

/** The channel this webhook serves; part of every chat's workflow id and storage key. */
export const CHANNEL = 'channel';
/** A chat message is text; anything longer is not a message we should feed to a model. */
const MAX_TEXT = 8000;

export const chatWorkflowId = (channel: string, chatId: string) => `chat-${channel}-${chatId}`;
export const ChatIdSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'letters, digits, _ . : - (≤ 128)');

const EnvelopeSchema = z.object({ type: z.string().min(1).max(64) }).loose();
const EntitySchema = z.object({
  /** The dedup key. The channel's test event has none: such a message is accepted, without dedup. */
  id: z
    .union([z.string().min(1).max(128), z.number().int()])
    .transform(String)
    .optional(),
  chatId: ChatIdSchema,
  plainText: z.string().max(MAX_TEXT).default(''),
  personType: z.enum(['user', 'manager', 'bot']),
  /** Defaults to the time of receipt (the channel's test event has none). */
  createdAt: z.union([z.number().int().nonnegative(), z.iso.datetime().transform((s) => Date.parse(s))]).optional(),
});
/** The channel's payload: `{type: "message", entity: {...}}`; other types are acknowledged and ignored. */
export const WebhookBodySchema = z.object({ type: z.literal('message'), entity: EntitySchema });

const AcceptedSchema = z.object({
  status: z.literal('accepted'),
  workflowId: z.string(),
  /** The channel's id, or `noid-<uuid>` when the message had none. */
  messageId: z.string(),
  /** False when the message had no id: a redelivery of it cannot be recognised. */
  dedup: z.boolean(),
  note: z.string().optional(),
});

/** Prefix of the id given to a message that came without one (such messages are never deduplicated). */
export const NO_ID_PREFIX = 'noid-';
const NO_ID_NOTE = 'no message id: redeliveries cannot be deduplicated';
const IgnoredSchema = z.object({ status: z.literal('ignored'), reason: z.string() });

registerRoute({
  method: 'post',
  path: '/webhooks/channel',
  summary: 'Channel webhook: delivers a customer or manager message to its chat workflow',
  description: `Signed with HMAC-SHA256 over the raw body: header \`${SIGNATURE_HEADER}: sha256=<hex>\`, secret CHANNEL_WEBHOOK_SECRET.`,
  tag: 'chats',
  public: true,
  body: WebhookBodySchema,
  headers: { [SIGNATURE_HEADER]: 'sha256=<hex HMAC of the raw body>' },
  responses: {
    202: {
      description: 'Delivered to the chat workflow (`dedup: false` when the message had no id, as in the test event)',
      body: AcceptedSchema,
    },
    200: { description: 'Acknowledged and ignored (not a message, a bot echo, or no text)', body: IgnoredSchema },
    400: 'Malformed payload',
    401: 'Missing or bad signature',
    413: 'Body too large',
  },
});

/** The workflow input a new chat starts with, from config (tests override the windows and limits). */
export function chatWorkflowInput(
  config: Pick<
    Config,
    | 'DEFAULT_MODEL'
    | 'CHAT_QUIET_MS'
    | 'CHAT_MAX_WAIT_MS'
    | 'CHAT_IDLE_CLOSE_MS'
    | 'CHAT_MANAGER_PAUSE_MS'
    | 'CHAT_TURN_LIMIT'
    | 'CHAT_SHOP_PREFIX'
  >,
  chatId: string,
  overrides: Partial<ChatWorkflowInput> = {},
): ChatWorkflowInput {
  return {
    channel: CHANNEL,
    chatId,
    model: normalizeModel(config.DEFAULT_MODEL),
    quietMs: config.CHAT_QUIET_MS,
    maxWaitMs: config.CHAT_MAX_WAIT_MS,
    idleCloseMs: config.CHAT_IDLE_CLOSE_MS,
    managerPauseMs: config.CHAT_MANAGER_PAUSE_MS,
    turnLimit: config.CHAT_TURN_LIMIT,
    shopPrefix: config.CHAT_SHOP_PREFIX,
    ...overrides,
  };
}

export interface WebhooksRouterOptions {
  /** Overrides of the chat workflow input (tests: shorter windows, small turn limit, their own shop prefix). */
  chat?: Partial<ChatWorkflowInput>;
  taskQueue?: string;
}

export function webhooksRouter(deps: ApiDeps, opts: WebhooksRouterOptions = {}): Router {
  const { config, temporal } = deps;
  const router = Router();
  const rawBody = express.raw({ type: () => true, limit: config.API_BODY_LIMIT_BYTES });

  router.post('/webhooks/channel', rawBody, async (req, res) => {
    const raw: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // Nothing is parsed, logged or started before the signature holds.
    if (!verifySignature(config.CHANNEL_WEBHOOK_SECRET, raw, req.get(SIGNATURE_HEADER))) {
      throw new HttpError(401, 'bad_signature', `Missing or invalid ${SIGNATURE_HEADER} (HMAC-SHA256 of the raw body)`);
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'invalid_json', 'Request body is not valid JSON');
    }
    const envelope = parse(EnvelopeSchema, json, 'body');
    if (envelope.type !== 'message') {
      res.status(200).json({ status: 'ignored', reason: `type "${envelope.type}" is not handled` });
      return;
    }
    const { entity } = parse(WebhookBodySchema, json, 'body');
    if (entity.personType === 'bot') {
      // Our own replies come back through the channel's webhook: answering them would loop.
      res.status(200).json({ status: 'ignored', reason: 'bot message' });
      return;
    }
    if (!entity.plainText.trim()) {
      res.status(200).json({ status: 'ignored', reason: 'no text' });
      return;
    }
    const message: ChatInboundMessage = {
      id: entity.id ?? `${NO_ID_PREFIX}${randomUUID()}`,
      text: entity.plainText,
      personType: entity.personType,
      createdAt: entity.createdAt ?? Date.now(),
    };
    const input = chatWorkflowInput(config, entity.chatId, opts.chat);
    const workflowId = chatWorkflowId(input.channel, entity.chatId);
    await temporal.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>('chatWorkflow', {
      workflowId,
      taskQueue: opts.taskQueue ?? ORCHESTRATOR_QUEUE,
      args: [input],
      signal: chatMessageSignal,
      signalArgs: [message],
      typedSearchAttributes: [
        { key: SearchAttributeKey.Kind, value: 'chat' },
        { key: SearchAttributeKey.ChatId, value: entity.chatId },
        { key: SearchAttributeKey.ModelId, value: input.model },
      ],
      staticSummary: `chat ${entity.chatId} on ${input.channel}`,
    });
    const dedup = entity.id !== undefined;
    res
      .status(202)
      .json({ status: 'accepted', workflowId, messageId: message.id, dedup, ...(dedup ? {} : { note: NO_ID_NOTE }) });
  });

  return router;
}
