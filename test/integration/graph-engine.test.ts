/**
 * The graph engine inside the real workflow sandbox (a local Temporal dev server): routing, reducers,
 * fan-out merge, step limit, interrupt (answered and timed out), the state query, and replay of a committed
 * history. Set AINODE_RECORD_HISTORIES=1 to re-record test/fixtures/histories/design-graph-engine.json.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createTemporalEnv, uid } from '../helpers/env';
import { graphResumeSignal, graphResumeUpdate, graphStateQuery } from '../../contracts/definitions';
import { GraphErrorType, type GraphSnapshot } from '../../workflows/graph';
import {
  graphFanOutWorkflow,
  graphInterruptWorkflow,
  graphRoutingWorkflow,
  graphStepLimitWorkflow,
} from './graph-workflows';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(120_000);

const HISTORY = path.join(__dirname, '../fixtures/histories/design-graph-engine.json');
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let workers: RunningWorkers | undefined;
const taskQueue = uid('graph');

beforeAll(async () => {
  env = await createTemporalEnv();
  bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./graph-workflows'), logger: quietLogger() });
  workers = runWorkers([await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle })]);
});

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
});

function quietLogger() {
  const noop = () => undefined;
  return { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
}

function start<A extends unknown[], R>(wf: (...args: A) => Promise<R>, args: A) {
  return env.client.workflow.start(wf, { taskQueue, workflowId: uid(wf.name), args });
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

/** Polls the state query until the graph reaches `status` (the workflow runs on its own schedule). */
async function waitForStatus(handle: WorkflowHandle, status: GraphSnapshot<unknown>['status']) {
  for (let i = 0; i < 600; i++) {
    const snap = await handle.query(graphStateQuery);
    if (snap.status === status) return snap;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`graph never reached ${status}`);
}

test('conditional edges route by state; append and replace reducers merge updates', async () => {
  const res = await (await start(graphRoutingWorkflow, [3])).result();
  expect(res.n).toBe(3);
  expect(res.parity).toBe('odd');
  expect(res.log).toEqual(['inc:1', 'odd:1', 'inc:2', 'even:2', 'inc:3', 'odd:3']);
  expect(res.steps).toEqual(['inc', 'odd', 'inc', 'even', 'inc', 'odd']);
});

test('fan-out runs one task per Send in one step and merges results in Send order', async () => {
  const handle = await start(graphFanOutWorkflow, [[1, 2, 3, 4]]);
  const res = await handle.result();
  expect(res.results).toEqual({ '1': 1, '2': 4, '3': 9, '4': 16 });
  // Tasks finished 4,3,2,1 (shorter sleeps last-in-list), yet the reducer saw them in Send order.
  expect(res.order).toEqual([1, 2, 3, 4]);
  expect(res.total).toBe(30);
  expect(res.joins).toBe(1);
  expect(res.steps).toBe(2);
  if (process.env.AINODE_RECORD_HISTORIES === '1') {
    const obj = temporal.api.history.v1.History.toObject(
      temporal.api.history.v1.History.fromObject(await handle.fetchHistory()),
      { longs: String, enums: String, bytes: String },
    );
    writeFileSync(HISTORY, JSON.stringify(obj, null, 1) + '\n');
  }
});

test('a loop past the step limit fails with GraphStepLimitExceeded', async () => {
  const failure = await failureOf((await start(graphStepLimitWorkflow, [5])).result());
  expect(failure.type).toBe(GraphErrorType.StepLimitExceeded);
  expect(failure.message).toContain('step limit of 5');
});

test('interrupt waits for input; the query shows node, state and steps; an update resumes it', async () => {
  const handle = await start(graphInterruptWorkflow, [{ timeout: '10 minutes' }]);
  const snap = await waitForStatus(handle, 'interrupted');
  expect(snap?.status).toBe('interrupted');
  expect(snap?.node).toBe('ask');
  expect(snap?.interrupt).toMatchObject({ node: 'ask', request: { question: 'Which region?' } });
  expect(snap?.steps.map((s) => s.node)).toEqual(['prepare']);
  expect(snap?.state).toMatchObject({ log: ['prepared'], answer: '' });

  const ack = await handle.executeUpdate(graphResumeUpdate, { args: ['ap-northeast-2'] });
  expect(ack).toEqual({ node: 'ask' });
  const res = await handle.result();
  expect(res.answer).toBe('ap-northeast-2');
  expect(res.log).toEqual(['prepared', 'answered:ap-northeast-2']);
  // Not waiting any more: the update validator rejects, the signal is ignored.
  const after = await handle.query(graphStateQuery);
  expect(after.status).toBe('completed');
  expect(after.steps.map((s) => s.node)).toEqual(['prepare', 'ask']);
});

test('the generic signal resumes an interrupt; an update after completion finds no running workflow', async () => {
  const handle = await start(graphInterruptWorkflow, [{ timeout: '10 minutes' }]);
  await waitForStatus(handle, 'interrupted');
  await handle.signal(graphResumeSignal, 'eu-west-1');
  expect((await handle.result()).answer).toBe('eu-west-1');
  const err = await handle.executeUpdate(graphResumeUpdate, { args: ['late'] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowNotFoundError);
  expect((err as Error).message).toMatch(/already completed/);
});

test('an update while the graph is not waiting for input is rejected by the validator and changes nothing', async () => {
  // `prepare` sleeps, so the graph is running but has no interrupt pending.
  const handle = await start(graphInterruptWorkflow, [{ timeout: '10 minutes', holdPrepare: '1 hour' }]);
  await waitForStatus(handle, 'running');
  const err = await handle.executeUpdate(graphResumeUpdate, { args: ['early'] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).message).toBe('the graph is not waiting for input');
  const snap = await handle.query(graphStateQuery);
  expect(snap).toMatchObject({ status: 'running', node: 'prepare' });
  expect(snap.interrupt).toBeUndefined();
  expect(snap.state).toMatchObject({ answer: '' });
  await handle.terminate('test done');
});

test('interrupt timeout: fails with GraphInterruptTimeout, or returns the default', async () => {
  const failure = await failureOf((await start(graphInterruptWorkflow, [{ timeout: '1 second' }])).result());
  expect(failure.type).toBe(GraphErrorType.InterruptTimeout);
  expect(failure.message).toContain('"ask" waited');

  const res = await (await start(graphInterruptWorkflow, [{ timeout: '1 second', fallback: 'us-east-1' }])).result();
  expect(res.answer).toBe('us-east-1');
});

test('a recorded history replays against the current engine without nondeterminism', async () => {
  // proto3-style JSON (enums and longs as strings) back into a History message.
  const history = temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(HISTORY, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'recorded-fan-out');
});
