/**
 * Job, function and usage records in the generic DynamoDB tables (pk/sk + gsi1), plus the full job result
 * in S3 (a DynamoDB item is capped at 400 KB; stdout alone may be larger). Shared by the API and the
 * orchestrator's jobs activities.
 *
 * - functions: pk `tenant#<t>`, sk `fn#<id>` (the current version) and `fnv#<id>#<version>` (every version)
 * - jobs:      pk `tenant#<t>`, sk `job#<id>`; gsi1 (`tenant#<t>`, `<createdAt>#<id>`) lists newest first
 * - usage:     one row per job and model; pk `tenant#<t>`, sk `<finishedAt>#<jobId>#<model>`;
 *              gsi1 (`fn#<functionId>`, same sort key) for usage per function
 */
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/clients';
import type { ExecutionResult, FunctionRecord, JobRecord, JobStatusName } from '../../contracts/jobs';

const tenantPk = (tenantId: string) => `tenant#${tenantId}`;
/** Logs kept on the DynamoDB record; the full result is in S3. */
const RECORD_LOG_CHARS = 8 * 1024;

export const resultKey = (jobId: string) => `jobs/${jobId}/result.json`;

/** Version rows sort in order: `fnv#<id>#0000000001`. */
const versionSk = (functionId: string, version: number) => `fnv#${functionId}#${String(version).padStart(10, '0')}`;

/** Thrown when another upload took the version this one meant to write; the caller retries with a fresh read. */
export class FunctionVersionConflict extends Error {}

/**
 * Stores `fn` as version `fn.version` and makes it the function's current version, atomically: the version
 * row must be new and the head must still be at `previousVersion` (absent for a new function). Two concurrent
 * uploads of one name cannot both become version N; the loser gets FunctionVersionConflict.
 */
export async function putFunctionVersion(
  storage: Storage,
  fn: FunctionRecord & { version: number },
  previousVersion: number | undefined,
): Promise<void> {
  const table = storage.table('functions');
  const head = {
    pk: tenantPk(fn.tenantId),
    sk: `fn#${fn.functionId}`,
    gsi1pk: `fn#${fn.functionId}`,
    gsi1sk: fn.createdAt,
    ...fn,
  };
  try {
    await storage.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: table,
              Item: { ...fn, pk: tenantPk(fn.tenantId), sk: versionSk(fn.functionId, fn.version) },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          {
            Put: {
              TableName: table,
              Item: head,
              ...(previousVersion === undefined
                ? { ConditionExpression: 'attribute_not_exists(pk)' }
                : {
                    // A head written before versions existed has no `version`: it is version 1.
                    ConditionExpression:
                      previousVersion === 1 ? 'attribute_not_exists(version) OR version = :prev' : 'version = :prev',
                    ExpressionAttributeValues: { ':prev': previousVersion },
                  }),
            },
          },
        ],
      }),
    );
  } catch (err) {
    if ((err as { name?: string }).name === 'TransactionCanceledException') {
      throw new FunctionVersionConflict(`function ${fn.functionId} changed while version ${fn.version} was written`);
    }
    throw err;
  }
}

/** A new function (POST /functions): version 1. */
export async function putFunction(storage: Storage, fn: FunctionRecord): Promise<void> {
  await putFunctionVersion(storage, { ...fn, version: 1 }, undefined);
}

/** The function's current version, or the given one. Records written before versions existed are version 1. */
export async function getFunction(
  storage: Storage,
  tenantId: string,
  functionId: string,
  version?: number,
): Promise<FunctionRecord | undefined> {
  const sk = version === undefined ? `fn#${functionId}` : versionSk(functionId, version);
  const res = await storage.doc.send(
    new GetCommand({ TableName: storage.table('functions'), Key: { pk: tenantPk(tenantId), sk } }),
  );
  if (!res.Item) {
    // Version 1 of a record from before versions existed is its head row.
    if (version === 1) {
      const head = await getFunction(storage, tenantId, functionId);
      return head && (head.version ?? 1) === 1 ? head : undefined;
    }
    return undefined;
  }
  const rec = strip(res.Item) as unknown as FunctionRecord;
  return { ...rec, version: rec.version ?? 1 };
}

/** Every stored version of a function, oldest first (at most `limit`). */
export async function listFunctionVersions(
  storage: Storage,
  tenantId: string,
  functionId: string,
  limit = 100,
): Promise<FunctionRecord[]> {
  const res = await storage.doc.send(
    new QueryCommand({
      TableName: storage.table('functions'),
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': tenantPk(tenantId), ':prefix': `fnv#${functionId}#` },
      Limit: limit,
    }),
  );
  const rows = (res.Items ?? []).map((i) => strip(i) as unknown as FunctionRecord);
  if (rows.length === 0) {
    const head = await getFunction(storage, tenantId, functionId);
    return head ? [head] : [];
  }
  return rows;
}

function strip(item: Record<string, unknown>): Record<string, unknown> {
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, ...rest } = item;
  return rest;
}

/** Writes a new job record unless one exists (idempotent starts). Returns false when it already existed. */
export async function createJobRecord(storage: Storage, job: JobRecord): Promise<boolean> {
  try {
    await storage.doc.send(
      new PutCommand({
        TableName: storage.table('jobs'),
        Item: {
          pk: tenantPk(job.tenantId),
          sk: `job#${job.jobId}`,
          gsi1pk: tenantPk(job.tenantId),
          gsi1sk: `${job.createdAt}#${job.jobId}`,
          ...job,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return false;
    throw err;
  }
}

export async function getJobRecord(storage: Storage, tenantId: string, jobId: string): Promise<JobRecord | undefined> {
  const res = await storage.doc.send(
    new GetCommand({ TableName: storage.table('jobs'), Key: { pk: tenantPk(tenantId), sk: `job#${jobId}` } }),
  );
  return res.Item ? (strip(res.Item) as unknown as JobRecord) : undefined;
}

/** The full result from S3 (falls back to the trimmed copy on the record). */
export async function getJobResult(storage: Storage, record: JobRecord): Promise<ExecutionResult | undefined> {
  const bytes = await storage.getObjectBytes(resultKey(record.jobId));
  if (bytes) return JSON.parse(Buffer.from(bytes).toString('utf8')) as ExecutionResult;
  return record.result;
}

/**
 * The list position a `nextCursor` of `tenantId`'s job list encodes, or undefined when `cursor` is not one (not
 * base64url JSON of string keys, or another tenant's position): the API answers 400, never a store error.
 */
export function decodeJobCursor(tenantId: string, cursor: string): Record<string, string> | undefined {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!key || typeof key !== 'object' || Array.isArray(key)) return undefined;
  const entries = Object.entries(key as Record<string, unknown>);
  const names = new Set(['pk', 'sk', 'gsi1pk', 'gsi1sk']);
  if (entries.length !== names.size || !entries.every(([k, v]) => names.has(k) && typeof v === 'string')) {
    return undefined;
  }
  const k = key as Record<string, string>;
  return k.pk === tenantPk(tenantId) && k.gsi1pk === tenantPk(tenantId) ? k : undefined;
}

export async function listJobRecords(
  storage: Storage,
  tenantId: string,
  opts: { limit: number; cursor?: string; status?: JobStatusName; functionId?: string },
): Promise<{ jobs: JobRecord[]; nextCursor?: string }> {
  const filters: string[] = [];
  const values: Record<string, unknown> = { ':pk': tenantPk(tenantId) };
  const names: Record<string, string> = {};
  if (opts.status) {
    filters.push('#status = :status');
    names['#status'] = 'status';
    values[':status'] = opts.status;
  }
  if (opts.functionId) {
    filters.push('functionId = :fn');
    values[':fn'] = opts.functionId;
  }
  const input: QueryCommandInput = {
    TableName: storage.table('jobs'),
    IndexName: 'gsi1',
    KeyConditionExpression: 'gsi1pk = :pk',
    ExpressionAttributeValues: values,
    ScanIndexForward: false,
    Limit: opts.limit,
    ExclusiveStartKey: opts.cursor ? decodeJobCursor(tenantId, opts.cursor) : undefined,
  };
  if (filters.length) input.FilterExpression = filters.join(' AND ');
  if (Object.keys(names).length) input.ExpressionAttributeNames = names;
  const res = await storage.doc.send(new QueryCommand(input));
  const jobs = (res.Items ?? []).map((i) => {
    const { result: _r, ...rest } = strip(i);
    return rest as unknown as JobRecord;
  });
  const nextCursor = res.LastEvaluatedKey
    ? Buffer.from(JSON.stringify(res.LastEvaluatedKey)).toString('base64url')
    : undefined;
  return { jobs, nextCursor };
}

/** Final state: the full result to S3, a trimmed copy and the status on the record, one usage row per model. */
export async function recordJobResult(
  storage: Storage,
  job: { jobId: string; tenantId: string; functionId: string; modelId: string; workflowId: string; createdAt: string },
  result: ExecutionResult,
): Promise<void> {
  await storage.putObject(resultKey(job.jobId), JSON.stringify(result), 'application/json');
  const trimmed: ExecutionResult = {
    ...result,
    stdout: result.stdout.slice(0, RECORD_LOG_CHARS),
    stderr: result.stderr.slice(-RECORD_LOG_CHARS),
  };
  await storage.doc.send(
    new UpdateCommand({
      TableName: storage.table('jobs'),
      Key: { pk: tenantPk(job.tenantId), sk: `job#${job.jobId}` },
      UpdateExpression:
        'SET #status = :status, finishedAt = :fin, #result = :result, jobId = :jobId, tenantId = :tenant, ' +
        'functionId = :fn, modelId = :model, workflowId = :wf, createdAt = if_not_exists(createdAt, :created), ' +
        'gsi1pk = :pk, gsi1sk = if_not_exists(gsi1sk, :gsk)',
      ExpressionAttributeNames: { '#status': 'status', '#result': 'result' },
      ExpressionAttributeValues: {
        ':status': result.status,
        ':fin': result.finishedAt,
        ':result': trimmed,
        ':jobId': job.jobId,
        ':tenant': job.tenantId,
        ':fn': job.functionId,
        ':model': job.modelId,
        ':wf': job.workflowId,
        ':created': job.createdAt,
        ':pk': tenantPk(job.tenantId),
        ':gsk': `${job.createdAt}#${job.jobId}`,
      },
    }),
  );
  await Promise.all(
    Object.entries(result.byModel).map(([model, u]) => {
      const sk = `${result.finishedAt}#${job.jobId}#${model}`;
      return storage.doc.send(
        new PutCommand({
          TableName: storage.table('usage'),
          Item: {
            pk: tenantPk(job.tenantId),
            sk,
            gsi1pk: `fn#${job.functionId}`,
            gsi1sk: sk,
            tenantId: job.tenantId,
            functionId: job.functionId,
            jobId: job.jobId,
            model,
            at: result.finishedAt,
            calls: u.calls,
            prompt: u.prompt,
            completion: u.completion,
            total: u.total,
            costUsd: u.costUsd ?? 0,
          },
        }),
      );
    }),
  );
}

/**
 * One usage row for an AI-server call (chat completion, embeddings), in the same table as jobs' rows: its
 * `functionId` is the route (`v1:chat.completions`), its `keyId` the API key's fingerprint. The sort key holds
 * the call id, so a retried write is the same row.
 */
export async function recordApiUsage(
  storage: Storage,
  row: { tenantId: string; keyId: string; callId: string; source: string; model: string },
  tokens: { prompt: number; completion: number; costUsd: number },
  at = new Date().toISOString(),
): Promise<void> {
  const sk = `${at}#${row.callId}#${row.model}`;
  await storage.doc
    .send(
      new PutCommand({
        TableName: storage.table('usage'),
        Item: {
          pk: tenantPk(row.tenantId),
          sk,
          gsi1pk: `fn#${row.source}`,
          gsi1sk: sk,
          tenantId: row.tenantId,
          functionId: row.source,
          jobId: row.callId,
          keyId: row.keyId,
          model: row.model,
          at,
          calls: 1,
          prompt: tokens.prompt,
          completion: tokens.completion,
          total: tokens.prompt + tokens.completion,
          costUsd: tokens.costUsd,
        },
        // The same call recorded twice (an activity retry after a lost reply) keeps the first row.
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    )
    .catch((err: unknown) => {
      if ((err as { name?: string }).name !== 'ConditionalCheckFailedException') throw err;
    });
}

export interface UsageRow {
  /** The API key's fingerprint, on rows of AI-server calls (`/v1/...`); jobs are charged to their function. */
  keyId?: string;
  functionId: string;
  model: string;
  jobs: number;
  calls: number;
  prompt: number;
  completion: number;
  total: number;
  costUsd: number;
}

/** Usage of a tenant between `from` and `to` (ISO instants), aggregated per function and model. */
export async function aggregateUsage(
  storage: Storage,
  tenantId: string,
  q: { functionId?: string; from: string; to: string },
): Promise<UsageRow[]> {
  const byFn = Boolean(q.functionId);
  const rows = new Map<string, UsageRow & { jobIds: Set<string> }>();
  let start: Record<string, unknown> | undefined;
  do {
    const res = await storage.doc.send(
      new QueryCommand({
        TableName: storage.table('usage'),
        IndexName: byFn ? 'gsi1' : undefined,
        KeyConditionExpression: byFn
          ? 'gsi1pk = :pk AND gsi1sk BETWEEN :from AND :to'
          : 'pk = :pk AND sk BETWEEN :from AND :to',
        // The function index spans tenants: keep only this tenant's rows.
        FilterExpression: byFn ? 'tenantId = :tenant' : undefined,
        ExpressionAttributeValues: {
          ':pk': byFn ? `fn#${q.functionId}` : tenantPk(tenantId),
          ':from': q.from,
          // `~` sorts after every character of `<iso>#<jobId>#<model>`.
          ':to': `${q.to}~`,
          ...(byFn ? { ':tenant': tenantId } : {}),
        },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of res.Items ?? []) {
      const key = `${item.functionId as string}\u0000${item.model as string}\u0000${(item.keyId as string) ?? ''}`;
      const row = rows.get(key) ?? {
        ...(item.keyId ? { keyId: item.keyId as string } : {}),
        functionId: item.functionId as string,
        model: item.model as string,
        jobs: 0,
        calls: 0,
        prompt: 0,
        completion: 0,
        total: 0,
        costUsd: 0,
        jobIds: new Set<string>(),
      };
      row.jobIds.add(item.jobId as string);
      row.calls += Number(item.calls ?? 0);
      row.prompt += Number(item.prompt ?? 0);
      row.completion += Number(item.completion ?? 0);
      row.total += Number(item.total ?? 0);
      row.costUsd += Number(item.costUsd ?? 0);
      rows.set(key, row);
    }
    start = res.LastEvaluatedKey;
  } while (start);
  return [...rows.values()].map(({ jobIds, ...r }) => ({ ...r, jobs: jobIds.size }));
}
