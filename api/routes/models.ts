/** `GET /models`: the catalog (every node's models, availability, live pollers, loaded state). */
import { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { registerRoute } from '../openapi';

/** Documents the catalog shape (activities/llm/catalog.ts `Catalog`). */
export const CatalogSchema = z.object({
  models: z.array(
    z.object({
      name: z.string().describe('Normalised model name, e.g. gemma3:270m'),
      queue: z.string().describe('The pinned Temporal task queue of the model'),
      nodes: z.array(z.object({ id: z.string(), available: z.boolean(), loaded: z.boolean() })),
      pollers: z.number().int().optional().describe('Live llm workers polling the queue; absent if unknown'),
      loaded: z.boolean().describe('Loaded in memory on at least one node'),
      available: z.boolean().describe('Served by at least one reachable node'),
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
  summary: 'The model catalog: models served by the Ollama nodes, with availability and live pollers',
  responses: { 200: { description: 'The catalog', body: CatalogSchema } },
});

export function modelsRouter(deps: ApiDeps): Router {
  const router = Router();
  router.get('/models', async (_req, res) => {
    res.json(await deps.catalog.get());
  });
  return router;
}
