/**
 * The model catalog (`GET /models`): the union of every node's `/api/tags`, each node asked with a short
 * timeout, merged per model with live pollers on its pinned queue (DescribeTaskQueue) and loaded state
 * (`/api/ps`). A dead or slow node is reported unavailable; `get()` never waits much past the node timeout.
 * A model is available only when a reachable node serves it AND, where pollers could be counted, an llm worker
 * polls its queue: a model created on a node after its worker last read the node's tags is listed, unavailable,
 * until the worker picks it up (else a prompt for it would wait on a queue nobody polls).
 */
import type { Client } from '@temporalio/client';
import { llmQueue, normalizeModel } from '../../common/task-queues';
import { checkModel } from './model-check';

export interface CatalogNode {
  id: string;
  url: string;
  available: boolean;
  error?: string;
  latencyMs?: number;
  models: string[];
  loaded: string[];
}

export interface CatalogModel {
  /** Same as `name`: the field clients of the services ainode replaces read. */
  id: string;
  name: string;
  /** Bytes on disk, from the nodes' `/api/tags` (the largest when nodes differ); 0 when unknown. */
  size: number;
  /** `available` as the word clients of the services ainode replaces read. */
  status: 'available' | 'unavailable';
  /** Served by at least one reachable node, and polled by an llm worker (where pollers could be counted). */
  available: boolean;
  /** Why it is unavailable, e.g. `no llm worker polls ainode-llm.x:latest`. */
  unavailableReason?: string;
  queue: string;
  /** Nodes that serve it (available or not). */
  nodes: { id: string; available: boolean; loaded: boolean }[];
  /**
   * Pollers on the model's queue (llm workers); undefined when Temporal could not be asked. Temporal keeps a
   * poller listed for a while after its worker stopped (matching.PollerHistoryTTL, 5 min by default).
   */
  pollers?: number;
  loaded: boolean;
}

export interface Catalog {
  models: CatalogModel[];
  nodes: CatalogNode[];
  generatedAt: string;
}

export interface ModelCatalog {
  get(): Promise<Catalog>;
  /** True when the model is available: a reachable node serves it and (when known) a worker polls it. */
  hasModel(model: string): Promise<boolean>;
}

export interface CatalogDeps {
  nodes: { id: string; url: string }[];
  nodeTimeoutMs: number;
  /** For poller counts; optional so the catalog works without Temporal. */
  temporal?: Client;
  namespace?: string;
  /** How long one answer is reused, to absorb bursts (e.g. every POST /prompts checks the model). Default 1000. */
  cacheMs?: number;
  /**
   * After cacheMs, for this much longer, the last answer is still returned at once while a fresh one is built in
   * the background (stale-while-revalidate): a request never waits for the nodes once the catalog is warm.
   * Default 0 (always wait for a fresh answer).
   */
  staleMs?: number;
}

/** Budget for the poller lookups after the nodes answered, so `get()` stays within nodeTimeoutMs + this. */
const POLLERS_TIMEOUT_MS = 500;
// Proto enum values (temporal.api.enums.v1): TASK_QUEUE_KIND_NORMAL, TASK_QUEUE_TYPE_ACTIVITY.
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

interface OllamaModelList {
  models?: { name?: string; model?: string; size?: number }[];
}

/** A node's answer plus the model sizes from its `/api/tags` (merged into the models, not shown per node). */
export interface NodeAnswer extends CatalogNode {
  sizes?: Record<string, number>;
}

/** A node's models from its `/api/tags` or `/api/ps`, normalised (`gemma3` → `gemma3:latest`). */
function modelNames(body: OllamaModelList): string[] {
  const names = (body.models ?? []).map((m) => m.name ?? m.model).filter((n): n is string => Boolean(n));
  return [...new Set(names.map(normalizeModel))].sort();
}

function modelSizes(body: OllamaModelList): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const m of body.models ?? []) {
    const name = m.name ?? m.model;
    if (name && typeof m.size === 'number') sizes[normalizeModel(name)] = m.size;
  }
  return sizes;
}

async function getJson(url: string, signal: AbortSignal): Promise<OllamaModelList> {
  const res = await fetch(url, { signal, headers: { accept: 'application/json' } });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${new URL(url).pathname} answered HTTP ${res.status}`);
  }
  return (await res.json()) as OllamaModelList;
}

/** A short, useful reason: "timed out after 2000 ms", "connect ECONNREFUSED 127.0.0.1:1", ... */
function reason(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `timed out after ${timeoutMs} ms`;
  return e?.cause?.message ?? e?.message ?? String(err);
}

async function askNode(node: { id: string; url: string }, timeoutMs: number): Promise<NodeAnswer> {
  const t0 = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  // `/api/ps` is optional (older nodes): only `/api/tags` decides availability.
  const [tags, ps] = await Promise.allSettled([
    getJson(`${node.url}/api/tags`, signal),
    getJson(`${node.url}/api/ps`, signal),
  ]);
  const latencyMs = Math.round(performance.now() - t0);
  if (tags.status === 'rejected') {
    return { ...node, available: false, error: reason(tags.reason, timeoutMs), latencyMs, models: [], loaded: [] };
  }
  return {
    ...node,
    available: true,
    latencyMs,
    models: modelNames(tags.value),
    loaded: ps.status === 'fulfilled' ? modelNames(ps.value) : [],
    sizes: modelSizes(tags.value),
  };
}

/** Live pollers per queue; a queue whose lookup failed or timed out is absent from the map. */
export async function pollerCounts(
  temporal: Pick<Client, 'connection' | 'workflowService'>,
  namespace: string,
  queues: string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const deadline = Date.now() + POLLERS_TIMEOUT_MS;
  const lookups = queues.map(async (name) => {
    const res = await temporal.connection.withDeadline(deadline, () =>
      temporal.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name, kind: TASK_QUEUE_KIND_NORMAL },
        taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
      }),
    );
    counts.set(name, res.pollers?.length ?? 0);
  });
  // The gRPC deadline should end each call; the timer is a second guard so get() can never hang here.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(lookups),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, POLLERS_TIMEOUT_MS + 50))),
  ]);
  clearTimeout(timer);
  return counts;
}

/**
 * Merges node answers into one entry per model, sorted by name. `pollers` (queue → count) decides too: a
 * model whose queue has 0 pollers is unavailable; a queue absent from the map (not asked) changes nothing.
 */
export function mergeNodes(nodes: NodeAnswer[], pollers?: Map<string, number>): CatalogModel[] {
  const byModel = new Map<string, CatalogModel>();
  for (const node of nodes) {
    for (const name of node.models) {
      const queue = llmQueue(name);
      const entry: CatalogModel = byModel.get(name) ?? {
        id: name,
        name,
        size: 0,
        status: 'unavailable',
        available: false,
        queue,
        nodes: [],
        ...(pollers?.has(queue) ? { pollers: pollers.get(queue) } : {}),
        loaded: false,
      };
      const loaded = node.loaded.includes(name);
      entry.nodes.push({ id: node.id, available: node.available, loaded });
      entry.available ||= node.available;
      entry.loaded ||= node.available && loaded;
      entry.size = Math.max(entry.size, node.sizes?.[name] ?? 0);
      byModel.set(name, entry);
    }
  }
  const down = (ids: string[]) =>
    ids.map((id) => `${id}: ${nodes.find((n) => n.id === id)?.error ?? 'unreachable'}`).join('; ');
  for (const m of byModel.values()) {
    if (!m.available) m.unavailableReason = `no reachable node serves it (${down(m.nodes.map((n) => n.id))})`;
    else if (m.pollers === 0) {
      m.available = false;
      m.unavailableReason = `no llm worker polls ${m.queue}`;
    }
    m.status = m.available ? 'available' : 'unavailable';
  }
  return [...byModel.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function createCatalog(deps: CatalogDeps): ModelCatalog {
  const cacheMs = deps.cacheMs ?? 1000;
  const namespace = deps.namespace ?? 'default';
  let cached: { settledAt?: number; value: Promise<Catalog> } | undefined;

  async function build(): Promise<Catalog> {
    const nodes = await Promise.all(deps.nodes.map((n) => askNode(n, deps.nodeTimeoutMs)));
    let models = mergeNodes(nodes);
    if (deps.temporal && models.length > 0) {
      const counts = await pollerCounts(
        deps.temporal,
        namespace,
        models.map((m) => m.queue),
      );
      models = mergeNodes(nodes, counts);
    }
    // Sizes live on the models; the nodes list stays `{..., models: string[]}`.
    const shown: CatalogNode[] = nodes.map(({ sizes: _sizes, ...node }) => node);
    return { models, nodes: shown, generatedAt: new Date().toISOString() };
  }

  const staleMs = deps.staleMs ?? 0;
  let refreshing: Promise<Catalog> | undefined;

  function rebuild(): { settledAt?: number; value: Promise<Catalog> } {
    const entry: { settledAt?: number; value: Promise<Catalog> } = { value: build() };
    entry.value.then(
      () => {
        entry.settledAt = Date.now();
        cached = entry;
      },
      () => {
        if (cached === entry) cached = undefined;
      },
    );
    return entry;
  }

  function get(): Promise<Catalog> {
    // Concurrent callers share one in-flight build; a finished one is reused for cacheMs.
    if (cached && cached.settledAt === undefined) return cached.value; // a build in flight
    const age = cached?.settledAt === undefined ? 0 : Date.now() - cached.settledAt;
    if (cached && age < cacheMs) return cached.value;
    if (cached?.settledAt !== undefined && age < cacheMs + staleMs) {
      // Stale but recent: answer now, refresh once in the background.
      refreshing ??= rebuild().value.finally(() => (refreshing = undefined));
      refreshing.catch(() => undefined);
      return cached.value;
    }
    const entry = rebuild();
    cached = entry;
    return entry.value;
  }

  return {
    get,
    async hasModel(model) {
      return (await checkModel(await get(), model)).ok;
    },
  };
}
