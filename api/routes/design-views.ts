/**
 * What a user watches and keeps of a design: `GET /designs/:id/events` (live progress as Server-Sent Events, read
 * from the workflow's `designEvents` query, resumable with Last-Event-ID), `GET /designs/:id/diagram` (Mermaid
 * text, or SVG rendered in Node) and `GET /designs/:id/revisions` (every revision committed to the design's git
 * repository, with its diff). Mounted by the designs router.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { HttpError } from '../../common/errors';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { askWorkflow, ownedWorkflow } from '../workflow-routes';
import { registerRoute } from '../openapi';
import { sseHeaders } from '../v1/completions';
import { designEventsQuery, designStatusQuery } from '../../contracts/definitions';
import type { DesignEvent, DesignResult, DesignStatus } from '../../contracts/design';
import { renderDiagramSvg } from '../../lib/terraform/diagram-svg';

const IdParamsSchema = z.object({ id: z.string().regex(/^design-[\w-]{1,100}$/, 'not a design id') });
const EventsQuerySchema = z
  .object({
    after: z
      .string()
      .regex(/^\d{1,9}$/, 'not a non-negative integer')
      .optional(),
  })
  .strict();
const DiagramQuerySchema = z.object({ format: z.enum(['mermaid', 'svg']).optional() }).strict();
const LAST_EVENT_ID = z.string().regex(/^\d{1,9}$/, 'not a non-negative integer');

/** How often a connected reader asks the workflow for new events, and how often an idle stream sends a comment. */
const POLL_MS = 400;
const KEEPALIVE_MS = 15_000;

registerRoute({
  method: 'get',
  path: '/designs/:id/events',
  summary:
    'Live progress (text/event-stream): node_start/node_end, questions, plan, resource, validation, files, ' +
    'revision and done events, each with `id: <seq>`; reconnect with Last-Event-ID (or `?after=`) to resume',
  params: IdParamsSchema,
  query: EventsQuerySchema,
  headers: { 'Last-Event-ID': 'The last event id received: only later events are sent' },
  responses: {
    200: 'text/event-stream; ends after the `done` event of the revision running (or the last one)',
    400: 'A malformed id, Last-Event-ID or after',
    404: 'No such design for this tenant',
  },
});
registerRoute({
  method: 'get',
  path: '/designs/:id/diagram',
  summary: 'The Mermaid diagram of the design’s resources and dependencies (text), or `?format=svg` rendered',
  params: IdParamsSchema,
  query: DiagramQuerySchema,
  responses: {
    200: { description: 'text/vnd.mermaid, or image/svg+xml', contentType: 'text/plain' },
    404: 'No such design, or no plan yet',
  },
});
registerRoute({
  method: 'get',
  path: '/designs/:id/revisions',
  summary: 'Every revision committed to the design’s git repository: commit, message, files, +/- lines and diff',
  params: IdParamsSchema,
  responses: { 200: '`{id, revisions: [...]}`', 404: 'No such design for this tenant' },
});

const frame = (e: DesignEvent) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function designViewsRouter(deps: ApiDeps): Router {
  const { temporal, config } = deps;
  const ask = <R>(id: string, fn: () => Promise<R>) => askWorkflow(temporal, config, `Design ${id}`, fn);
  const router = Router();

  /** The design's status (running) or result (completed); a failed or cancelled design has neither. */
  async function statusOf(req: Request, id: string): Promise<DesignStatus | DesignResult> {
    const { handle, desc } = await ownedWorkflow(temporal, req, id, 'Design');
    if (desc.status.name === 'RUNNING') return ask(id, () => handle.query(designStatusQuery));
    if (desc.status.name === 'COMPLETED') return (await handle.result()) as DesignResult;
    throw new HttpError(409, 'conflict', `design ${id} did not finish (${desc.status.name.toLowerCase()})`);
  }

  router.get('/designs/:id/events', async (req: Request, res: Response) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const query = parse(EventsQuerySchema, req.query, 'query');
    const header = req.get('last-event-id');
    const lastEventId = header === undefined ? undefined : parse(LAST_EVENT_ID, header.trim(), 'headers');
    let after = Number(lastEventId ?? query.after ?? 0);
    const { handle, desc } = await ownedWorkflow(temporal, req, id, 'Design');
    let closed = false;
    req.on('close', () => (closed = true));
    sseHeaders(res);
    let quietSince = Date.now();
    let running = desc.status.name === 'RUNNING';
    while (!closed) {
      let page;
      try {
        page = await ask(id, () => handle.query(designEventsQuery, { after }));
      } catch (err) {
        // No worker answered (workers_unavailable: reconnect with Last-Event-ID later), or a closed design whose
        // worker cannot answer the query (or a failed one): say so and end the stream.
        const message = err instanceof Error ? err.message : String(err);
        const code = err instanceof HttpError ? err.code : 'unavailable';
        res.write(`event: error\ndata: ${JSON.stringify({ error: { code, message } })}\n\n`);
        break;
      }
      for (const e of page.events) res.write(frame(e));
      if (page.events.length) {
        after = page.events[page.events.length - 1]!.seq;
        quietSince = Date.now();
      }
      // The stream ends once the revision that runs has finished and every event was sent.
      if ((page.idle && after >= page.lastSeq) || !running) break;
      if (Date.now() - quietSince > KEEPALIVE_MS) {
        res.write(': keep-alive\n\n');
        quietSince = Date.now();
      }
      await sleep(POLL_MS);
      if (closed) break;
      running = (await handle.describe().catch(() => desc)).status.name === 'RUNNING';
    }
    res.end();
  });

  router.get('/designs/:id/diagram', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { format } = parse(DiagramQuerySchema, req.query, 'query');
    const status = await statusOf(req, id);
    if (!status.diagram) throw new HttpError(404, 'not_found', `design ${id} has no plan yet, so no diagram`);
    const svg =
      format === 'svg' || (format === undefined && req.accepts(['text/plain', 'image/svg+xml']) === 'image/svg+xml');
    if (svg) {
      res.type('image/svg+xml').send(await renderDiagramSvg(status.diagram));
      return;
    }
    res.type('text/vnd.mermaid; charset=utf-8').send(status.diagram);
  });

  router.get('/designs/:id/revisions', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const status = await statusOf(req, id);
    res.json({ id, revision: status.revision, revisions: status.revisions ?? [] });
  });

  return router;
}
