/** What the graph engine (workflows/graph) exposes through its state query. Workflow-safe: types only. */

/** One task the engine ran. */
export interface GraphStep {
  step: number;
  node: string;
  taskIndex: number;
  /** Workflow time (deterministic), ms since epoch. */
  startedAt: number;
  durationMs: number;
}

export interface PendingInterrupt {
  node: string;
  request: unknown;
  since: number;
}

/** What the state query returns. */
export interface GraphSnapshot<S> {
  graph: string;
  status: 'idle' | 'running' | 'interrupted' | 'completed' | 'failed';
  /** Nodes of the current superstep (several during a fan-out). */
  currentNodes: string[];
  /** The first current node, or the last one that ran. */
  node: string | undefined;
  step: number;
  state: S;
  steps: GraphStep[];
  interrupt?: PendingInterrupt;
}
