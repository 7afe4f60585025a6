/** `GET /models`: the catalog (every node's models, availability, live pollers, loaded state). */
import { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { registerRoute } from '../openapi';

/** Documents the catalog shape (activities/llm/catalog.ts `Catalog`). */
export const CatalogSchema = z.object({
  models: z.array(
    z.object({
      id: z.string().describe('Same as name (the field clients of OpenAI-style model lists read)'),
      name: z.string().describe('Normalised model name, e.g. gemma3:270m'),
      size: z.number().int().describe("Bytes on disk, from the nodes' /api/tags; 0 when unknown"),
      status: z.enum(['available', 'unavailable']).describe('`available` as a word'),
      available: z
        .boolean()
        .describe('Served by at least one reachable node, and polled by an llm worker (when pollers are known)'),
      unavailableReason: z
        .string()
        .optional()
        .describe('Why it is unavailable, e.g. "no llm worker polls ainode-llm.x:latest"'),
      queue: z.string().describe('The pinned Temporal task queue of the model'),
      nodes: z.array(z.object({ id: z.string(), available: z.boolean(), loaded: z.boolean() })),
      pollers: z
        .number()
        .int()
        .optional()
        .describe('llm workers polling the queue (0 means unavailable); absent when Temporal could not be asked'),
      loaded: z.boolean().describe('Loaded in memory on at least one node'),
    }),
  ),
  nodes: z.array(
    z.object({
      id: z.string(),
      url: z.string(),
      available: z.boolean(),
      error: z.string().optional(),
      latencyMs: z.number().optional(),
      models: z.array(z.string()),
      loaded: z.array(z.string()),
    }),
  ),
  generatedAt: z.string(),
});

registerRoute({
  method: 'get',
  path: '/models',
  summary:
    'The model catalog: models served by the Ollama nodes, with availability (a reachable node and a live llm ' +
    'worker), live pollers and compat fields id/name/size/status',
  responses: { 200: { description: 'The catalog', body: CatalogSchema } },
});

export function modelsRouter(deps: ApiDeps): Router {
  const router = Router();
  router.get('/models', async (_req, res) => {
    // Typed by the schema, so the documented shape and the catalog's cannot drift apart.
    const body: z.infer<typeof CatalogSchema> = await deps.catalog.get();
    res.json(body);
  });
  return router;
}
