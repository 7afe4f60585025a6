/**
 * The AI gateway sends a call's Update again when Temporal fails to deliver it (an orchestrator killed with the
 * workflow task that carried it, the server aborting in-flight Updates, an RPC deadline), with the same Update id,
 * so the script's call is answered once instead of failing the job; the call's own answer (an Update failure) and a
 * finished job are passed on at once. Seen in the cluster kill test (test/cluster/cluster.test.ts).
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ServiceError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { isTransientUpdateError, startGateway, type Gateway } from '../../lib/executor/gateway';

const TOKEN = 'token-of-the-retry-job-0123456789abcdef';

/** What @temporalio/client throws for a gRPC status it does not map to its own error classes. */
function grpcError(code: number, details: string): ServiceError {
  const cause = Object.assign(new Error(details), { code, details, metadata: {} });
  return new ServiceError('Workflow Update failed', { cause });
}

/** A stand-in client whose Updates fail with `failures` in turn, then answer. Records each try's Update id. */
function fakeClient(failures: (() => Error)[]) {
  const updateIds: string[] = [];
  const client = {
    workflow: {
      getHandle: () => ({
        executeUpdate: async (_u: unknown, o: { updateId: string }) => {
          updateIds.push(o.updateId);
          const fail = failures.shift();
          if (fail) throw fail();
          return { content: 'ok', model: 'm', usage: { prompt: 1, completion: 1, total: 2 }, call: 1 };
        },
      }),
    },
  } as unknown as Client;
  return { client, updateIds };
}

function call(socketPath: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        path: '/v1/generate',
        method: 'POST',
        agent: false,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          'x-ainode-call-id': 'call-0123456789',
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ prompt: 'hi' }));
  });
}

let dir: string;
let gateway: Gateway | undefined;
const warnings: string[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-gw-retry-'));
  warnings.length = 0;
});
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(failures: (() => Error)[], updateRetryBudgetMs?: number) {
  const fake = fakeClient(failures);
  gateway = await startGateway({
    client: fake.client,
    workflowId: 'job-retry',
    socketPath: path.join(dir, 'gateway.sock'),
    token: TOKEN,
    logger: { warn: (_o: unknown, msg?: string) => warnings.push(msg ?? '') } as never,
    updateRetryBudgetMs,
  });
  return fake;
}

it('classifies what Temporal failed to deliver as transient, and answers as final', () => {
  expect(isTransientUpdateError(grpcError(GrpcStatus.UNAVAILABLE, 'workflow update was aborted'))).toBe(true);
  expect(isTransientUpdateError(grpcError(GrpcStatus.FAILED_PRECONDITION, 'workflow task failure'))).toBe(true);
  expect(isTransientUpdateError(new WorkflowUpdateRPCTimeoutOrCancelledError('deadline'))).toBe(true);
  expect(isTransientUpdateError(grpcError(GrpcStatus.INVALID_ARGUMENT, 'bad request'))).toBe(false);
  const answer = new WorkflowUpdateFailedError('failed', ApplicationFailure.create({ type: 'OllamaError' }));
  expect(isTransientUpdateError(answer)).toBe(false);
  expect(isTransientUpdateError(new WorkflowNotFoundError('gone', 'job-retry', undefined))).toBe(false);
  expect(isTransientUpdateError(new Error('anything else'))).toBe(false);
});

it('sends the same Update again through transient errors and answers the call once', async () => {
  const fake = await start([
    () => grpcError(GrpcStatus.UNAVAILABLE, 'workflow update was aborted'),
    () => grpcError(GrpcStatus.FAILED_PRECONDITION, 'Unable to perform workflow execution update'),
    () => new WorkflowUpdateRPCTimeoutOrCancelledError('Workflow update call timeout or cancelled'),
  ]);
  const res = await call(gateway!.socketPath);
  expect(res.status).toBe(200);
  expect(res.body.content).toBe('ok');
  expect(fake.updateIds).toEqual(Array(4).fill('llm-call-0123456789'));
  expect(warnings.filter((w) => w.includes('sending it again'))).toHaveLength(3);
});

it("passes the Update's own failure on at once, without another try", async () => {
  const fake = await start([
    () =>
      new WorkflowUpdateFailedError(
        'failed',
        ApplicationFailure.create({ type: 'InferenceTimeout', message: 'LLM call exceeded 1000 ms' }),
      ),
  ]);
  const res = await call(gateway!.socketPath);
  expect(res.status).toBe(504);
  expect(res.body.error.message).toBe('LLM call exceeded 1000 ms');
  expect(fake.updateIds).toHaveLength(1);
});

it('gives up with an error once the retry budget is spent, and logs why', async () => {
  const failures = Array.from({ length: 100 }, () => () => grpcError(GrpcStatus.UNAVAILABLE, 'unreachable'));
  const fake = await start(failures, 600);
  const res = await call(gateway!.socketPath);
  expect(res.status).toBe(502);
  expect(res.body.error.message).toBe('the LLM call failed (internal error)');
  expect(fake.updateIds.length).toBeGreaterThan(1);
  expect(fake.updateIds.length).toBeLessThan(100);
  expect(warnings).toContain('AI gateway: call failed');
});
