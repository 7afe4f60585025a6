/**
 * The error registry (common/errors.ts) end to end: docs/api.md's table is the documented contract; for every
 * registry entry a client sees that status and code through the API's error middleware (each shape a failure
 * reaches a route in), through the status endpoints (GET /designs/:id), and through the AI gateway.
 */
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import pino from 'pino';
import { ActivityFailure, ApplicationFailure, RetryState, WorkflowNotFoundError } from '@temporalio/common';
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { describeFailure, errorHandler } from '../../api/middleware/errors';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import type { Catalog, ModelCatalog } from '../../lib/llm/catalog';
import type { Storage } from '../../lib/storage/clients';
import { loadConfig } from '../../common/config';
import { startGateway, type Gateway } from '../../lib/executor/gateway';
import { ErrorType, FAILURES, NON_RETRYABLE_ERROR_TYPES, type FailureSpec } from '../../common/errors';
import { GraphErrorType } from '../../workflows/graph/state-graph';

interface DocRow {
  type: string;
  status: number;
  retryAfter?: string;
  code: string;
  retried: boolean;
  when: string;
}

/** The rows of docs/api.md's error table (between its markers). */
function documentedErrors(): DocRow[] {
  const md = readFileSync(path.join(__dirname, '../../docs/api.md'), 'utf8');
  const table = /<!-- error-table:start -->\n([\s\S]*?)<!-- error-table:end -->/.exec(md)?.[1];
  if (!table) throw new Error('docs/api.md has no error table between <!-- error-table:start/end --> markers');
  return table
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '').trim());
      const [type, status, code, retried, when] = cells;
      const retryAfter = /`Retry-After: (\d+)`/.exec(status ?? '')?.[1];
      return {
        type: type!.replace(/`/g, ''),
        status: Number.parseInt(status ?? '', 10),
        ...(retryAfter ? { retryAfter } : {}),
        code: code!.replace(/`/g, ''),
        retried: retried === 'yes',
        when: when ?? '',
      };
    });
}

const DOCS = documentedErrors();
const documented = (type: string): DocRow => {
  const row = DOCS.find((r) => r.type === type);
  if (!row) throw new Error(`docs/api.md does not list ${type}`);
  return row;
};
const TYPES = Object.keys(FAILURES) as ErrorType[];

const failure = (type: string) =>
  ApplicationFailure.create({
    type,
    message: `${type} happened`,
    nonRetryable: !FAILURES[type as ErrorType]?.retryable,
  });
/** What an activity's failure looks like to the client awaiting the workflow's result. */
const viaActivity = (cause: Error) =>
  new WorkflowFailedError(
    'Workflow execution failed',
    new ActivityFailure('activity failed', 'llmChat', 'act-1', RetryState.NON_RETRYABLE_FAILURE, 'id', cause),
    RetryState.NON_RETRYABLE_FAILURE,
  );
/** A failure the workflow code threw itself (the graph engine's, a design's). */
const viaWorkflow = (cause: Error) =>
  new WorkflowFailedError('Workflow execution failed', cause, RetryState.NON_RETRYABLE_FAILURE);
/** An update handler or validator that threw (e.g. answers nobody waits for). */
const viaUpdate = (cause: Error) => new WorkflowUpdateFailedError('Workflow Update failed', cause);

const SHAPES: [string, (type: string) => Error][] = [
  ['thrown as is', (t) => failure(t)],
  ['through an activity', (t) => viaActivity(failure(t))],
  ['through the workflow', (t) => viaWorkflow(failure(t))],
  ['through an update', (t) => viaUpdate(failure(t))],
];

describe('the error registry', () => {
  it('docs/api.md lists every registry entry exactly as declared, and nothing else', () => {
    const declared = (Object.entries(FAILURES) as [string, FailureSpec][]).map(([type, s]) => ({
      type,
      status: s.status,
      ...(s.retryAfterS ? { retryAfter: String(s.retryAfterS) } : {}),
      code: s.code,
      retried: s.retryable,
      when: s.doc,
    }));
    expect(DOCS).toEqual(declared);
  });

  it('has one code per type and keeps the type strings recorded in histories', () => {
    const codes = TYPES.map((t) => FAILURES[t].code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const t of TYPES) expect(ErrorType[t]).toBe(t);
    expect(GraphErrorType).toEqual({
      StepLimitExceeded: 'GraphStepLimitExceeded',
      InterruptTimeout: 'GraphInterruptTimeout',
      InvalidGraph: 'GraphInvalid',
    });
    expect([ErrorType.DesignPlanInvalid, ErrorType.OllamaError]).toEqual(['DesignPlanInvalid', 'OllamaError']);
  });

  it('derives the non-retryable list from the documented retryability, keeping the historical four', () => {
    expect([...NON_RETRYABLE_ERROR_TYPES].sort()).toEqual(
      DOCS.filter((r) => !r.retried)
        .map((r) => r.type)
        .sort(),
    );
    expect(NON_RETRYABLE_ERROR_TYPES).toEqual(
      expect.arrayContaining(['ModelNotFound', 'InvalidRequest', 'NotFound', 'LimitExceeded']),
    );
  });
});

describe('API: every failure type gives its documented status and code', () => {
  const app = express();
  let current: Error = new Error('unset');
  app.get('/fail', () => {
    throw current;
  });
  app.use(errorHandler);

  describe.each(TYPES)('%s', (type) => {
    it.each(SHAPES)('through the error middleware, %s', async (_shape, shape) => {
      const doc = documented(type);
      current = shape(type);
      const res = await request(app).get('/fail');
      expect(res.status).toBe(doc.status);
      expect(res.body).toEqual({ error: { code: doc.code, message: `${type} happened` } });
      expect(res.headers['retry-after']).toBe(doc.retryAfter);
    });

    it.each(SHAPES)('in a status response, %s', (_shape, shape) => {
      expect(describeFailure(shape(type))).toEqual({ code: documented(type).code, message: `${type} happened` });
    });
  });

  it('an error of ours that carries a registry type (ArchiveError) maps like its failure', async () => {
    const { ArchiveError } = await import('../../lib/zip/extract');
    current = new ArchiveError('entry "../x" escapes the work dir (..)', '../x');
    const res = await request(app).get('/fail');
    const doc = documented('ArchiveInvalid');
    expect([res.status, res.body.error.code]).toEqual([doc.status, doc.code]);
  });

  it('a failure of no registry type stays a 500 and workflow_failed', async () => {
    current = viaWorkflow(failure('SomethingElse'));
    const res = await request(app).get('/fail');
    expect([res.status, res.body.error.code]).toEqual([500, 'internal']);
    expect(describeFailure(current).code).toBe('workflow_failed');
    // Not fooled by Object.prototype: 'toString' is no failure type.
    expect(describeFailure(viaWorkflow(failure('toString'))).code).toBe('workflow_failed');
  });
});

describe('GET /designs/:id: a failed design reports its documented code and type', () => {
  const KEY = 'key-aaaaaaaa';
  let result: () => Promise<unknown> = async () => ({});
  const temporal = {
    workflow: {
      getHandle: () => ({
        describe: async () => ({
          status: { name: 'FAILED' },
          memo: { tenant: 'tenant-a' },
          startTime: new Date(0),
          closeTime: new Date(1),
        }),
        result: () => result(),
      }),
    },
  } as unknown as Client;
  const catalog: ModelCatalog = {
    get: async (): Promise<Catalog> => ({ models: [], nodes: [], generatedAt: new Date(0).toISOString() }),
    hasModel: async () => false,
  };
  const deps = {
    config: loadConfig({ API_KEYS: `${KEY}:tenant-a`, LOG_LEVEL: 'silent' }),
    temporal,
    catalog,
    storage: {} as Storage,
    logger: pino({ level: 'silent' }),
  } as ApiDeps;
  const app = createApp(deps);

  it.each(TYPES)('%s', async (type) => {
    result = async () => {
      throw viaWorkflow(failure(type));
    };
    const res = await request(app).get('/designs/design-1').set('Authorization', `Bearer ${KEY}`);
    expect(res.status).toBe(200);
    expect(res.body.error).toEqual({ code: documented(type).code, message: `${type} happened`, type });
  });
});

describe('AI gateway: every failure type gives its documented status and code', () => {
  const TOKEN = 'job-token-1234';
  let dir: string;
  let gateway: Gateway;
  let updateError: Error = new Error('unset');
  const client = {
    workflow: {
      getHandle: () => ({
        executeUpdate: async () => {
          throw updateError;
        },
      }),
    },
  } as unknown as Client;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-errors-'));
    gateway = await startGateway({ client, workflowId: 'job-1', socketPath: path.join(dir, 'ai.sock'), token: TOKEN });
  });
  afterAll(async () => {
    await gateway.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** One call as the SDK makes it: POST /v1/generate over the Unix socket. */
  function call(): Promise<{
    status: number;
    body: { error?: { code: string; message: string } };
    retryAfter?: string;
  }> {
    const payload = JSON.stringify({ prompt: 'hi' });
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: gateway.socketPath,
          path: '/v1/generate',
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
              retryAfter: res.headers['retry-after'] as string | undefined,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  it.each(TYPES)('%s', async (type) => {
    const doc = documented(type);
    updateError = viaUpdate(failure(type));
    const res = await call();
    expect(res.status).toBe(doc.status);
    expect(res.body.error).toEqual({ code: doc.code, message: `${type} happened` });
    expect(res.retryAfter).toBe(doc.retryAfter);
  });

  it("a closed job's workflow is JobFinished; a failure of no registry type is OllamaError's", async () => {
    updateError = new WorkflowNotFoundError('gone', 'job-1', undefined);
    const finished = await call();
    expect([finished.status, finished.body.error?.code]).toEqual([
      documented('JobFinished').status,
      documented('JobFinished').code,
    ]);
    updateError = viaUpdate(failure('SomethingElse'));
    const other = await call();
    expect([other.status, other.body.error?.code]).toEqual([
      documented('OllamaError').status,
      documented('OllamaError').code,
    ]);
  });
});
