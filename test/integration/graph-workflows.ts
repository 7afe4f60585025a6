/** Tiny workflows that exercise the graph engine inside the real workflow sandbox (graph-engine.test.ts). */
import type { Duration } from '@temporalio/common';
import { sleep } from '@temporalio/workflow';
import { channels, END, Send, START, StateGraph } from '../../workflows/graph';

interface LoopState {
  n: number;
  limit: number;
  log: string[];
  parity: string;
}

/** Conditional routing and reducers: count to `limit`, logging even/odd branches (append) and the last parity. */
export async function graphRoutingWorkflow(limit: number, stepLimit = 50): Promise<LoopState & { steps: string[] }> {
  const graph = new StateGraph<LoopState>({
    n: channels.replace(0),
    limit: channels.replace(0),
    log: channels.append<string>(),
    parity: channels.replace(''),
  })
    .addNode('inc', (s) => ({ n: s.n + 1, log: [`inc:${s.n + 1}`] }))
    .addNode('even', (s) => ({ log: [`even:${s.n}`], parity: 'even' }))
    .addNode('odd', (s) => ({ log: [`odd:${s.n}`], parity: 'odd' }))
    .addEdge(START, 'inc')
    .addConditionalEdges('inc', (s) => (s.n % 2 === 0 ? 'isEven' : 'isOdd'), { isEven: 'even', isOdd: 'odd' })
    .addConditionalEdges('even', (s) => (s.n >= s.limit ? END : 'inc'))
    .addConditionalEdges('odd', (s) => (s.n >= s.limit ? END : 'inc'))
    .compile({ name: 'routing', stepLimit });
  const final = await graph.invoke({ limit });
  return { ...final, steps: graph.snapshot().steps.map((s) => s.node) };
}

interface FanState {
  items: number[];
  item: number;
  results: Record<string, number>;
  order: number[];
  total: number;
}

/**
 * Fan-out: one `square` task per item, finishing in reverse order (longer sleeps first); the append reducer
 * must still list results in Send order, and `join` runs once after all of them.
 */
export async function graphFanOutWorkflow(items: number[]): Promise<FanState & { joins: number; steps: number }> {
  let joins = 0;
  const graph = new StateGraph<FanState>({
    items: channels.replace<number[]>([]),
    item: channels.replace(0),
    results: channels.merge<number>(),
    order: channels.append<number>(),
    total: channels.replace(0),
  })
    .addNode('square', async (s) => {
      await sleep(10 * (items.length - items.indexOf(s.item)));
      return { results: { [String(s.item)]: s.item * s.item }, order: [s.item] };
    })
    .addNode('join', (s) => {
      joins++;
      return { total: Object.values(s.results).reduce((a, b) => a + b, 0) };
    })
    .addConditionalEdges(START, (s) => s.items.map((item) => new Send<FanState>('square', { item })))
    .addEdge('square', 'join')
    .addEdge('join', END)
    .compile({ name: 'fan-out' });
  const final = await graph.invoke({ items });
  return { ...final, joins, steps: graph.snapshot().step };
}

/** A loop that never ends: must fail with GraphStepLimitExceeded. */
export async function graphStepLimitWorkflow(stepLimit: number): Promise<number> {
  const graph = new StateGraph<{ n: number }>({ n: channels.sum() })
    .addNode('spin', () => ({ n: 1 }))
    .addEdge(START, 'spin')
    .addEdge('spin', 'spin')
    .compile({ stepLimit });
  return (await graph.invoke({})).n;
}

interface AskState {
  question: string;
  answer: string;
  log: string[];
}

/**
 * `ask` interrupts for an answer (resumed through the generic graphResume signal/update); `default` on timeout.
 * `holdPrepare`: `prepare` sleeps this long first, so the graph runs without waiting for input meanwhile.
 */
export async function graphInterruptWorkflow(opts: {
  timeout: Duration;
  fallback?: string;
  holdPrepare?: Duration;
}): Promise<AskState> {
  const graph = new StateGraph<AskState>({
    question: channels.replace('Which region?'),
    answer: channels.replace(''),
    log: channels.append<string>(),
  })
    .addNode('prepare', async () => {
      if (opts.holdPrepare !== undefined) await sleep(opts.holdPrepare);
      return { log: ['prepared'] };
    })
    .addNode('ask', async (s, ctx) => {
      const answer = await ctx.interrupt<string>(
        { question: s.question },
        opts.fallback === undefined ? { timeout: opts.timeout } : { timeout: opts.timeout, default: opts.fallback },
      );
      return { answer, log: [`answered:${answer}`] };
    })
    .addEdge(START, 'prepare')
    .addEdge('prepare', 'ask')
    .addEdge('ask', END)
    .compile({ name: 'interrupt' });
  return graph.invoke({});
}
