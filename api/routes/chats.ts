/**
 * Chats, behind the API key: `GET /chats/:chatId` (state stored each turn, or the live workflow before the
 * first turn), `GET /chats/:chatId/messages` (the bot's replies: the local outbox) and
 * `POST /chats/:chatId/resume` (end a manager's pause).
 */
import { Router } from 'express';
import { z } from 'zod';
import { WorkflowNotFoundError } from '@temporalio/common';
import { HttpError } from '../../common/errors';
import { listOutboxMessages, readChatState, writeChatState } from '../../lib/chat/state';
import { chatResumeSignal, chatStatusQuery } from '../../contracts/definitions';
import type { chatWorkflow } from '../../workflows/chat/chat-workflow';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { askWorkflow } from '../workflow-routes';
import { assertTenant } from '../middleware/auth';
import { registerRoute } from '../openapi';
import { CHANNEL, ChatIdSchema, chatWorkflowId } from './webhooks';

const ParamsSchema = z.object({ chatId: ChatIdSchema });
const MessagesQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(200).default(50).describe('At most this many replies'),
    after: z.coerce.number().int().min(0).optional().describe('Only replies after this turn (pagination)'),
  })
  .strict();

/** How a bot reply was chosen and written (see docs/api.md, "Chats"). */
const ReplyMetaSchema = z.object({
  agent: z.string(),
  product: z.string(),
  intent: z.string(),
  path: z.enum(['model', 'repaired', 'fallback']).describe('router: first answer, after one repair, or keywords'),
  writer: z.enum(['data', 'model', 'fallback']).describe('who wrote the text'),
  lang: z.string(),
  replaced: z
    .object({ reason: z.string(), detail: z.string() })
    .optional()
    .describe('why the model draft was not sent'),
});
const LineSchema = z.object({
  role: z.enum(['customer', 'manager', 'bot']),
  text: z.string(),
  at: z.number(),
  id: z.string().optional(),
  agent: z.string().optional(),
  held: z.boolean().optional(),
  meta: ReplyMetaSchema.optional(),
});
const ChatSchema = z.object({
  chatId: z.string(),
  channel: z.string(),
  turns: z.number(),
  paused: z.boolean(),
  pausedUntil: z.number().optional(),
  lastAgent: z.string().optional(),
  summary: z.string(),
  messages: z.array(LineSchema),
  updatedAt: z.number().optional(),
});
const MessagesSchema = z.object({
  chatId: z.string(),
  messages: z.array(
    z.object({
      id: z.string(),
      turn: z.number(),
      text: z.string(),
      agent: z.string(),
      inReplyTo: z.array(z.string()),
      via: z.enum(['callback', 'outbox']),
      createdAt: z.number(),
      meta: ReplyMetaSchema.optional(),
    }),
  ),
});

registerRoute({
  method: 'get',
  path: '/chats/:chatId',
  summary: 'A chat’s state: recent messages, last agent, running summary, pause',
  tag: 'chats',
  params: ParamsSchema,
  responses: { 200: { description: 'The chat', body: ChatSchema }, 404: 'Unknown chat' },
});
registerRoute({
  method: 'get',
  path: '/chats/:chatId/messages',
  summary: 'The bot’s replies in this chat (the local outbox), oldest first',
  tag: 'chats',
  params: ParamsSchema,
  query: MessagesQuerySchema,
  responses: { 200: { description: 'Replies', body: MessagesSchema }, 404: 'Unknown chat' },
});
registerRoute({
  method: 'post',
  path: '/chats/:chatId/resume',
  summary: 'End a manager’s pause: the bot answers again from the next customer message',
  tag: 'chats',
  params: ParamsSchema,
  responses: { 202: 'Resumed', 404: 'Unknown chat' },
});

const notFound = (chatId: string) => new HttpError(404, 'not_found', `Chat ${chatId} not found`);

export function chatsRouter(deps: ApiDeps): Router {
  const { storage, temporal, config } = deps;
  const router = Router();
  // The channel's chats belong to one tenant (the shop); other tenants' keys see them as missing (404).
  router.use('/chats', (req, _res, next) => {
    assertTenant(config.CHANNEL_TENANT, req, 'Chat');
    next();
  });

  router.get('/chats/:chatId', async (req, res) => {
    const { chatId } = parse(ParamsSchema, req.params, 'params');
    const state = await readChatState(storage, CHANNEL, chatId);
    if (state) {
      const { channel, turns, paused, pausedUntil, lastAgent, summary, messages, updatedAt } = state;
      res.json({ chatId, channel, turns, paused, pausedUntil, lastAgent, summary, messages, updatedAt });
      return;
    }
    // Before its first turn is stored, a chat exists only as its running workflow.
    try {
      const handle = temporal.workflow.getHandle<typeof chatWorkflow>(chatWorkflowId(CHANNEL, chatId));
      const live = await askWorkflow(temporal, config, `Chat ${chatId}`, () => handle.query(chatStatusQuery));
      res.json({
        chatId,
        channel: live.channel,
        turns: live.turns,
        paused: live.paused,
        pausedUntil: live.pausedUntil,
        lastAgent: live.lastAgent,
        summary: '',
        messages: [],
      });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(chatId);
      throw err;
    }
  });

  router.get('/chats/:chatId/messages', async (req, res) => {
    const { chatId } = parse(ParamsSchema, req.params, 'params');
    const q = parse(MessagesQuerySchema, req.query, 'query');
    const messages = await listOutboxMessages(storage, CHANNEL, chatId, { limit: q.limit, afterTurn: q.after });
    if (messages.length === 0 && !(await chatExists(deps, chatId))) throw notFound(chatId);
    res.json({ chatId, messages });
  });

  router.post('/chats/:chatId/resume', async (req, res) => {
    const { chatId } = parse(ParamsSchema, req.params, 'params');
    try {
      await temporal.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).signal(chatResumeSignal);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      // The run closed while paused: clear the pause in the stored state the next run starts from.
      const state = await readChatState(storage, CHANNEL, chatId);
      if (!state) throw notFound(chatId);
      if (state.paused) await writeChatState(storage, { ...state, paused: false, pausedUntil: undefined });
    }
    res.status(202).json({ chatId, status: 'resumed' });
  });

  return router;
}

async function chatExists(deps: ApiDeps, chatId: string): Promise<boolean> {
  if (await readChatState(deps.storage, CHANNEL, chatId)) return true;
  try {
    await deps.temporal.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
