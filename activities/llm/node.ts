/**
 * Operations on one Ollama node (health, warm-up, pull, refresh), registered on `nodeQueue(nodeId)` so a
 * workflow or an operator can address a specific node rather than "any node serving model X".
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Ollama } from 'ollama';
import { ErrorType } from '../../common/errors';
import { normalizeModel } from '../../common/task-queues';
import { withRequestSignal } from '../../lib/llm/client';
import { toLlmFailure } from '../../lib/llm/errors';

export interface NodeActivityDeps {
  ollama: Ollama;
  nodeId: string;
  /** Context size used to load models; must equal the llm activities' numCtx or the first call reloads. */
  numCtx?: number;
  /** How long a warmed-up model stays loaded. */
  keepAlive?: string | number;
  /** The llm worker's "re-read the node's models now" (workers/llm.ts); without it nodeRefresh fails. */
  refresh?: () => Promise<NodeRefresh>;
}

/** What one re-read of the node's `/api/tags` changed in the queues its llm worker polls. */
export interface NodeRefresh {
  nodeId: string;
  /** Models polled after the refresh. */
  models: string[];
  started: string[];
  stopped: string[];
  /** Set when the node did not answer: then nothing changed (a briefly unreachable node keeps its pollers). */
  error?: string;
}

export interface NodeHealth {
  nodeId: string;
  version: string;
  /** Models the node serves (`/api/tags`), normalized (`x` → `x:latest`) and deduplicated. */
  models: string[];
  /** Models loaded in memory right now (`/api/ps`). */
  loaded: { model: string; sizeVram: number; expiresAt?: string }[];
}

export interface NodeActivities {
  nodeHealth(): Promise<NodeHealth>;
  /** Loads `model` into memory with a long keep-alive, so the first real call does not pay the load. */
  nodeWarmup(model: string): Promise<{ nodeId: string; model: string; loadDurationMs: number }>;
  /** Pulls `model` from the registry the node is configured with; heartbeats with the progress. */
  nodePull(model: string): Promise<{ nodeId: string; model: string; status: string }>;
  /** Re-reads the node's models now: polls the queue of a model that appeared, stops that of one that left. */
  nodeRefresh(): Promise<NodeRefresh>;
}

/** Default keep-alive of a warmed-up model: a day, i.e. "stay loaded" for a node dedicated to it. */
export const WARM_KEEP_ALIVE = '24h';

export function createNodeActivities(deps: NodeActivityDeps): NodeActivities {
  const { ollama, nodeId } = deps;
  const run = async <T>(model: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try {
      return await withRequestSignal(Context.current().cancellationSignal, fn);
    } catch (err) {
      if (Context.current().cancellationSignal.aborted) throw err;
      throw toLlmFailure(err, { model, nodeId });
    }
  };
  return {
    async nodeHealth() {
      return run(undefined, async () => {
        const [version, tags, ps] = await Promise.all([ollama.version(), ollama.list(), ollama.ps()]);
        return {
          nodeId,
          version: version.version,
          models: [...new Set(tags.models.map((m) => normalizeModel(m.name)))].sort(),
          loaded: ps.models.map((m) => ({
            model: normalizeModel(m.name),
            sizeVram: m.size_vram,
            expiresAt: m.expires_at ? new Date(m.expires_at).toISOString() : undefined,
          })),
        };
      });
    },

    async nodeWarmup(model) {
      return run(model, async () => {
        // An empty prompt only loads the model (Ollama's documented way to preload).
        const res = await ollama.generate({
          model,
          prompt: '',
          keep_alive: deps.keepAlive ?? WARM_KEEP_ALIVE,
          ...(deps.numCtx ? { options: { num_ctx: deps.numCtx } } : {}),
        });
        return { nodeId, model, loadDurationMs: Math.round((res.load_duration ?? 0) / 1e6) };
      });
    },

    async nodePull(model) {
      return run(model, async () => {
        const stream = await ollama.pull({ model, stream: true });
        let status = '';
        for await (const p of stream) {
          status = p.status;
          Context.current().heartbeat({ status: p.status, completed: p.completed, total: p.total });
        }
        return { nodeId, model, status };
      });
    },

    async nodeRefresh() {
      if (!deps.refresh) {
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message: `the worker of node ${nodeId} does not follow its models`,
        });
      }
      return deps.refresh();
    },
  };
}
