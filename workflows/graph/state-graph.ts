/**
 * A LangGraph-style graph engine that runs inside a Temporal workflow. It is pure orchestration: nodes do
 * their I/O through activities, the engine only merges state, follows edges and waits on `condition`, so a
 * graph replays deterministically. Execution is in supersteps (as in LangGraph/Pregel): every task of a
 * step runs concurrently, their updates are merged in task order through the per-key reducers, then the
 * edges of the nodes that ran decide the next step.
 */
import type { Duration } from '@temporalio/common';
import { ApplicationFailure, condition, setHandler } from '@temporalio/workflow';
import { ErrorType } from '../../common/errors';
import { graphResumeSignal, graphResumeUpdate, graphStateQuery } from '../../contracts/definitions';
import type { GraphSnapshot, GraphStep, PendingInterrupt } from '../../contracts/graph';

export type { GraphSnapshot, GraphStep, PendingInterrupt } from '../../contracts/graph';

/** The virtual entry node: `addEdge(START, 'first')`. */
export const START = '__start__';
/** The virtual exit node: routing to it ends the run. */
export const END = '__end__';

/**
 * Failure types of the engine (ApplicationFailure.type), all non-retryable: a retry replays the same graph.
 * Declared in the error registry (common/errors.ts) with their HTTP status and code; these are its names here.
 */
export const GraphErrorType = {
  /** More supersteps than `stepLimit`: almost always a loop whose exit condition never holds. */
  StepLimitExceeded: ErrorType.GraphStepLimitExceeded,
  /** An `interrupt` waited longer than its timeout and had no default. */
  InterruptTimeout: ErrorType.GraphInterruptTimeout,
  /** The graph itself is wrong (unknown node, no entry, a router returned an unknown branch). */
  InvalidGraph: ErrorType.GraphInvalid,
} as const;

/** Combines the current value of a state key with a node's update for that key. */
export type Reducer<V> = (current: V, update: V) => V;

/** One state key: its initial value and how updates merge into it (replace when no reducer). */
export interface Channel<V> {
  default: () => V;
  reducer?: Reducer<V>;
}

/** A channel per state key. */
export type Channels<S> = { [K in keyof S]-?: Channel<S[K]> };

/** Ready-made channels. */
export const channels = {
  /** Last write wins. */
  replace<V>(initial: V): Channel<V> {
    return { default: () => structuredCloneSafe(initial) };
  },
  /** Lists that only grow (message logs, per-task results): updates are appended. */
  append<T>(): Channel<T[]> {
    return { default: () => [], reducer: (cur, upd) => [...cur, ...upd] };
  },
  /** Records merged key by key, e.g. results of a fan-out keyed by item id. */
  merge<V>(): Channel<Record<string, V>> {
    return { default: () => ({}), reducer: (cur, upd) => ({ ...cur, ...upd }) };
  },
  /** Counters. */
  sum(): Channel<number> {
    return { default: () => 0, reducer: (cur, upd) => cur + upd };
  },
  /** Any reducer, e.g. adding token usage. */
  reduce<V>(initial: () => V, reducer: Reducer<V>): Channel<V> {
    return { default: initial, reducer };
  },
};

// Plain data only lives in graph state; JSON round-trip keeps defaults from being shared between runs.
function structuredCloneSafe<V>(v: V): V {
  return v === undefined || v === null || typeof v !== 'object' ? v : (JSON.parse(JSON.stringify(v)) as V);
}

/**
 * Fan-out: a router returning `[new Send('generate', {item: a}), new Send('generate', {item: b})]` runs
 * `generate` once per Send, concurrently, each seeing the state overlaid with its own `arg`. Their updates
 * merge through the reducers (in Send order, so the merge is deterministic).
 */
export class Send<S> {
  constructor(
    readonly node: string,
    readonly arg: Partial<S>,
  ) {}
}

export interface InterruptOptions<T> {
  /** How long to wait for `resume()`; unlimited when absent. */
  timeout?: Duration;
  /** Returned on timeout instead of failing with `GraphInterruptTimeout`. */
  default?: T;
}

/** What a node receives besides the state. */
export interface NodeContext {
  node: string;
  /** 1-based superstep number of this run. */
  step: number;
  /** Index of this task among the Sends of its step (fan-out), 0 otherwise. */
  taskIndex: number;
  /**
   * Pauses the graph until the workflow calls `graph.resume(value)` (from a signal or update handler), and
   * returns that value. `request` (e.g. the questions) is visible in the state query while waiting.
   */
  interrupt<T>(request: unknown, options?: InterruptOptions<T>): Promise<T>;
}

export type NodeUpdate<S> = Partial<S> | void;
export type NodeFn<S> = (state: S, ctx: NodeContext) => Promise<NodeUpdate<S>> | NodeUpdate<S>;
/** Decides where to go after a node: a branch name (mapped by pathMap), a node, END, or Sends. */
export type Router<S> = (state: S) => string | Send<S> | (string | Send<S>)[];

export interface CompileOptions<S> {
  /** Name shown in the snapshot. */
  name?: string;
  /** Maximum supersteps per `invoke`; exceeding it fails with `GraphStepLimitExceeded`. Default 100. */
  stepLimit?: number;
  /** Register the `graphState` query and the generic `graphResume` signal/update (default true). */
  exposeHandlers?: boolean;
  /** Called after every superstep, e.g. to update the workflow's summary or search attributes. */
  onStep?: (snapshot: GraphSnapshot<S>) => void;
  /** Called when an interrupt starts (with it) and ends (with undefined). */
  onInterrupt?: (pending: PendingInterrupt | undefined) => void;
}

export interface InvokeOptions<S> {
  /** Run from this node instead of START's edges (e.g. a revision restarting at `gather`). */
  startAt?: string;
  /** Existing state to continue from; `input` is merged into it through the reducers. */
  state?: S;
}

interface Task<S> {
  node: string;
  arg?: Partial<S>;
}

type ConditionalEdge<S> = { router: Router<S>; pathMap?: Record<string, string> };

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: GraphErrorType.InvalidGraph, message, nonRetryable: true });
}

/**
 * Builder, as in LangGraph:
 * ```ts
 * const graph = new StateGraph<State>({ messages: channels.append<string>(), n: channels.replace(0) })
 *   .addNode('a', (s) => ({ n: s.n + 1 }))
 *   .addEdge(START, 'a')
 *   .addConditionalEdges('a', (s) => (s.n < 3 ? 'again' : 'done'), { again: 'a', done: END })
 *   .compile({ stepLimit: 10 });
 * const final = await graph.invoke({});
 * ```
 */
export class StateGraph<S extends object> {
  private readonly nodes = new Map<string, NodeFn<S>>();
  private readonly edges = new Map<string, string[]>();
  private readonly conditional = new Map<string, ConditionalEdge<S>>();

  constructor(readonly channels: Channels<S>) {}

  addNode(name: string, fn: NodeFn<S>): this {
    if (name === START || name === END) throw invalid(`"${name}" is reserved`);
    if (this.nodes.has(name)) throw invalid(`node "${name}" is already defined`);
    this.nodes.set(name, fn);
    return this;
  }

  /** Always go from `from` to `to` (several edges from one node run their targets in parallel). */
  addEdge(from: string, to: string): this {
    this.edges.set(from, [...(this.edges.get(from) ?? []), to]);
    return this;
  }

  /** After `from`, `router(state)` picks the next node(s); `pathMap` maps its branch names to nodes. */
  addConditionalEdges(from: string, router: Router<S>, pathMap?: Record<string, string>): this {
    if (this.conditional.has(from)) throw invalid(`node "${from}" already has conditional edges`);
    this.conditional.set(from, { router, pathMap });
    return this;
  }

  compile(options: CompileOptions<S> = {}): CompiledGraph<S> {
    const known = (n: string) => n === END || this.nodes.has(n);
    if (!this.edges.has(START) && !this.conditional.has(START)) throw invalid('no edge from START');
    for (const [from, tos] of this.edges) {
      if (from !== START && !this.nodes.has(from)) throw invalid(`edge from unknown node "${from}"`);
      for (const to of tos) if (!known(to)) throw invalid(`edge from "${from}" to unknown node "${to}"`);
    }
    for (const [from, { pathMap }] of this.conditional) {
      if (from !== START && !this.nodes.has(from)) throw invalid(`conditional edges from unknown node "${from}"`);
      for (const to of Object.values(pathMap ?? {})) {
        if (!known(to)) throw invalid(`conditional edge from "${from}" to unknown node "${to}"`);
      }
    }
    for (const n of this.nodes.keys()) {
      if (!this.edges.has(n) && !this.conditional.has(n)) throw invalid(`node "${n}" has no outgoing edge (use END)`);
    }
    return new CompiledGraph(this.channels, this.nodes, this.edges, this.conditional, options);
  }
}

/** A runnable graph. One `invoke` at a time; its progress is visible through `snapshot()` and the query. */
export class CompiledGraph<S extends object> {
  private status: GraphSnapshot<S>['status'] = 'idle';
  private state: S;
  private steps: GraphStep[] = [];
  private step = 0;
  private currentNodes: string[] = [];
  private pending: PendingInterrupt | undefined;
  private inbox: { value: unknown }[] = [];
  private readonly stepLimit: number;
  private readonly name: string;

  constructor(
    private readonly channels: Channels<S>,
    private readonly nodes: Map<string, NodeFn<S>>,
    private readonly edges: Map<string, string[]>,
    private readonly conditional: Map<string, ConditionalEdge<S>>,
    private readonly options: CompileOptions<S>,
  ) {
    this.stepLimit = options.stepLimit ?? 100;
    this.name = options.name ?? 'graph';
    this.state = this.initialState();
    if (options.exposeHandlers !== false) {
      setHandler(graphStateQuery, () => this.snapshot() as GraphSnapshot<unknown>);
      setHandler(graphResumeSignal, (value) => {
        if (this.pending) this.resume(value);
      });
      setHandler(
        graphResumeUpdate,
        (value) => {
          const node = this.pending!.node;
          this.resume(value);
          return { node };
        },
        {
          validator: (_value: unknown) => {
            if (!this.pending) throw new Error('the graph is not waiting for input');
          },
        },
      );
    }
  }

  /** The initial state: every channel's default. */
  initialState(): S {
    const s = {} as S;
    for (const key of Object.keys(this.channels) as (keyof S)[]) s[key] = this.channels[key].default();
    return s;
  }

  /** Merges `update` into `state` through the reducers (pure; returns a new object). */
  applyUpdate(state: S, update: NodeUpdate<S>): S {
    if (!update) return state;
    const next = { ...state };
    for (const key of Object.keys(update) as (keyof S)[]) {
      const value = update[key];
      if (value === undefined) continue;
      const channel = this.channels[key];
      if (!channel) throw invalid(`update of unknown state key "${String(key)}"`);
      next[key] = channel.reducer ? channel.reducer(next[key], value as S[keyof S]) : (value as S[keyof S]);
    }
    return next;
  }

  snapshot(): GraphSnapshot<S> {
    return {
      graph: this.name,
      status: this.status,
      currentNodes: [...this.currentNodes],
      node: this.currentNodes[0] ?? this.steps[this.steps.length - 1]?.node,
      step: this.step,
      state: this.state,
      steps: this.steps,
      ...(this.pending ? { interrupt: this.pending } : {}),
    };
  }

  /** The interrupt the graph waits on, if any (an update validator checks this before accepting input). */
  get pendingInterrupt(): PendingInterrupt | undefined {
    return this.pending;
  }

  /** Delivers human input to the waiting `interrupt`. Throws when nothing waits. */
  resume(value: unknown): void {
    if (!this.pending) throw new Error('the graph is not waiting for input');
    this.inbox.push({ value });
  }

  /** Runs the graph to END and returns the final state. */
  async invoke(input: Partial<S>, opts: InvokeOptions<S> = {}): Promise<S> {
    if (this.status === 'running' || this.status === 'interrupted') throw invalid('the graph is already running');
    this.state = this.applyUpdate(opts.state ?? this.initialState(), input);
    this.status = 'running';
    this.step = 0;
    this.steps = [];
    let tasks: Task<S>[] = opts.startAt ? [{ node: opts.startAt }] : this.next(START, this.state);
    try {
      while (tasks.length > 0) {
        this.step++;
        if (this.step > this.stepLimit) {
          throw ApplicationFailure.create({
            type: GraphErrorType.StepLimitExceeded,
            message: `graph "${this.name}" exceeded its step limit of ${this.stepLimit} (next: ${tasks.map((t) => t.node).join(', ')})`,
            nonRetryable: true,
          });
        }
        for (const t of tasks) if (!this.nodes.has(t.node)) throw invalid(`unknown node "${t.node}"`);
        this.currentNodes = tasks.map((t) => t.node);
        const base = this.state;
        const updates = await Promise.all(tasks.map((t, i) => this.runTask(t, i, base)));
        // Merge in task order, whatever order the tasks finished in: the result is the same on replay.
        for (const u of updates) this.state = this.applyUpdate(this.state, u);
        tasks = this.nextTasks(tasks);
        this.options.onStep?.(this.snapshot());
      }
      this.status = 'completed';
      return this.state;
    } catch (err) {
      this.status = 'failed';
      throw err;
    } finally {
      this.currentNodes = [];
    }
  }

  private async runTask(task: Task<S>, taskIndex: number, base: S): Promise<NodeUpdate<S>> {
    const startedAt = Date.now();
    const fn = this.nodes.get(task.node)!;
    const ctx: NodeContext = {
      node: task.node,
      step: this.step,
      taskIndex,
      interrupt: (request, options) => this.interrupt(task.node, request, options),
    };
    const update = await fn(task.arg ? { ...base, ...task.arg } : base, ctx);
    this.steps.push({ step: this.step, node: task.node, taskIndex, startedAt, durationMs: Date.now() - startedAt });
    return update;
  }

  private async interrupt<T>(node: string, request: unknown, options: InterruptOptions<T> = {}): Promise<T> {
    if (this.pending) throw invalid(`"${node}" interrupted while "${this.pending.node}" already waits for input`);
    this.pending = { node, request, since: Date.now() };
    this.inbox = [];
    this.status = 'interrupted';
    this.options.onInterrupt?.(this.pending);
    try {
      const got =
        options.timeout === undefined
          ? (await condition(() => this.inbox.length > 0), true)
          : await condition(() => this.inbox.length > 0, options.timeout);
      if (got) return this.inbox.shift()!.value as T;
      if ('default' in options) return options.default as T;
      throw ApplicationFailure.create({
        type: GraphErrorType.InterruptTimeout,
        message: `"${node}" waited ${String(options.timeout)} for input and got none`,
        nonRetryable: true,
      });
    } finally {
      this.pending = undefined;
      this.status = 'running';
      this.options.onInterrupt?.(undefined);
    }
  }

  /** Targets of one node's edges, given the state after its step. */
  private next(from: string, state: S): Task<S>[] {
    const out: Task<S>[] = (this.edges.get(from) ?? []).map((node) => ({ node }));
    const cond = this.conditional.get(from);
    if (cond) {
      const decision = cond.router(state);
      for (const d of Array.isArray(decision) ? decision : [decision]) {
        if (d instanceof Send) {
          out.push({ node: d.node, arg: d.arg });
        } else {
          const target = cond.pathMap ? cond.pathMap[d] : d;
          if (target === undefined) throw invalid(`router of "${from}" returned unknown branch "${d}"`);
          out.push({ node: target });
        }
      }
    }
    return out;
  }

  /** Next superstep: each node that ran contributes its edges once; plain targets are deduplicated. */
  private nextTasks(ran: Task<S>[]): Task<S>[] {
    const seenFrom = new Set<string>();
    const seenTo = new Set<string>();
    const out: Task<S>[] = [];
    for (const t of ran) {
      if (seenFrom.has(t.node)) continue;
      seenFrom.add(t.node);
      for (const n of this.next(t.node, this.state)) {
        if (n.node === END) continue;
        if (!n.arg) {
          if (seenTo.has(n.node)) continue;
          seenTo.add(n.node);
        }
        out.push(n);
      }
    }
    return out;
  }
}
