/**
 * `runJobContainer`, the executor's one activity (queue `ainode-executor`): wait for admission (host memory
 * budget, per-tenant cap), download the package, extract it safely (heartbeating, cancellable), start the AI
 * gateway, run the locked-down container with a quota on `/out`, collect `/out` to S3, clean up.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { ErrorType } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { Storage } from '../../lib/storage/clients';
import { retryStorage } from '../../lib/storage/retry';
import { INLINE_LOG_BYTES, type ContainerResult, type OutputFile, type RunContainerInput } from '../../contracts/jobs';
import { CONTAINER_PATHS, removeOrphans, runContainer } from '../../lib/executor/container';
import { ArchiveAborted, ArchiveError, DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits } from '../../lib/zip/extract';
import { extractZipIsolated } from '../../lib/zip/extract-isolated';
import { startGateway } from '../../lib/executor/gateway';
import { AdmissionRefused, tenantOfPackage, type Admission } from '../../lib/executor/admission';
import { mountQuotaDir, unmountQuotaDir, type OutQuota } from '../../lib/executor/quota';
import { ensurePrivateDir, unmountUnder } from '../../lib/executor/dirs';

/** The SDK shipped with this checkout; bind-mounted read-only at /opt/ainode. */
export const SDK_DIR = path.resolve(__dirname, '../../sdk/python');
const OUTPUT_MAX_FILES = 100;
const OUTPUT_MAX_BYTES = 100 * 1_048_576;
/** The container's user; it owns /out. */
const JOB_UID = 10001;
/** The quota on /out while the job runs: the collection caps, with room for the directories holding the files. */
export const OUT_QUOTA: OutQuota = { bytes: OUTPUT_MAX_BYTES, inodes: 2 * OUTPUT_MAX_FILES };

export interface ExecutorDeps {
  docker: Docker;
  storage: Storage;
  /** To send SDK calls as Workflow Updates. */
  client: Client;
  /** Stable per Docker host: containers are labelled with it, and orphans of a previous life removed. */
  executorId: string;
  image: string;
  /** Host directory for per-job work dirs (code, input, /out). */
  workRoot: string;
  /** Host directory for per-job gateway sockets. */
  socketDir: string;
  sdkDir?: string;
  archiveLimits?: ArchiveLimits;
  /** Admission shared by every job of this executor (host memory budget, per-tenant cap); none: no wait. */
  admission?: Admission;
  /** Quota on /out (default OUT_QUOTA). */
  outQuota?: OutQuota;
  logger?: Logger;
}

async function isRoot(): Promise<boolean> {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Too much in /out is the job's doing: not worth a retry. */
function outputLimit(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorType.LimitExceeded, nonRetryable: true, message });
}

/** Uploads every regular file under `dir` (never following links the script may have planted). */
async function collectOutputs(
  put: (key: string, body: Buffer) => Promise<void>,
  dir: string,
  prefix: string,
): Promise<OutputFile[]> {
  const files: OutputFile[] = [];
  let total = 0;
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const name = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(name);
      else if (e.isFile()) {
        if (files.length >= OUTPUT_MAX_FILES) throw outputLimit(`more than ${OUTPUT_MAX_FILES} files in /out`);
        // O_NOFOLLOW: a file swapped for a symlink after readdir still cannot make us read the host.
        const fh = await fs.open(path.join(dir, name), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
        try {
          const stat = await fh.stat();
          if (!stat.isFile()) continue;
          total += stat.size;
          if (total > OUTPUT_MAX_BYTES) throw outputLimit(`/out holds more than ${OUTPUT_MAX_BYTES} bytes`);
          const body = await fh.readFile();
          const key = `${prefix}${name}`;
          await put(key, body);
          files.push({ name, key, size: stat.size });
        } finally {
          await fh.close();
        }
      }
    }
  };
  await walk('');
  return files;
}

export function createExecutorActivities(deps: ExecutorDeps) {
  const sdkDir = deps.sdkDir ?? SDK_DIR;
  return {
    /**
     * Runs one job's script in a fresh container and returns its result. Cancelling the activity kills the
     * container; a non-zero exit is a result, not an error (the workflow decides the job's status).
     */
    async runJobContainer(input: RunContainerInput): Promise<ContainerResult> {
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const name = `${input.jobId}.${attempt}`;
      const jobRoot = path.join(deps.workRoot, name);
      const jobDir = path.join(jobRoot, 'in');
      const outDir = path.join(jobRoot, 'out');
      const gatewayDir = path.join(deps.socketDir, name);
      const outQuota = deps.outQuota ?? OUT_QUOTA;
      let release: (() => void) | undefined;
      if (deps.admission) {
        ctx.heartbeat({ phase: 'queued', attempt });
        try {
          release = await deps.admission.acquire(
            { tenantId: tenantOfPackage(input.packageKey), memoryMb: input.limits.memoryMb },
            { signal: ctx.cancellationSignal, onWait: () => ctx.heartbeat({ phase: 'queued', attempt }) },
          );
        } catch (err) {
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('job cancelled while queued');
          if (err instanceof AdmissionRefused) {
            throw ApplicationFailure.create({
              type: ErrorType.LimitExceeded,
              nonRetryable: true,
              message: err.message,
            });
          }
          throw err;
        }
      }
      let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
      let outMounted = false;
      // S3 unreachable for a while: wait for it here (heartbeating) rather than fail, which would run the job again.
      const durably = <T>(phase: string, op: () => Promise<T>) =>
        retryStorage(op, {
          signal: ctx.cancellationSignal,
          onRetry: ({ retry }) => ctx.heartbeat({ phase, attempt, storageRetries: retry }),
        });
      try {
        ctx.heartbeat({ phase: 'preparing', attempt });
        await fs.rm(jobRoot, { recursive: true, force: true });
        await fs.mkdir(jobDir, { recursive: true, mode: 0o755 });
        await fs.mkdir(outDir, { recursive: true, mode: 0o755 });
        await fs.mkdir(gatewayDir, { recursive: true, mode: 0o755 });
        // /out is a tmpfs of the quota's size where this process may mount; the watcher kills at the cap anyway.
        outMounted = await mountQuotaDir(outDir, outQuota, JOB_UID, JOB_UID);
        // The container user must be able to write /out.
        if (!outMounted) {
          if (await isRoot()) await fs.chown(outDir, JOB_UID, JOB_UID);
          else await fs.chmod(outDir, 0o777);
        }
        const pkg = await durably('preparing', () => deps.storage.getObjectBytes(input.packageKey));
        if (!pkg) {
          throw ApplicationFailure.create({
            type: ErrorType.NotFound,
            nonRetryable: true,
            message: `code package ${input.packageKey} not found`,
          });
        }
        try {
          // In a child process without root (when this one is root): the archive is hostile input.
          await extractZipIsolated(
            Buffer.from(pkg),
            path.join(jobDir, 'code'),
            deps.archiveLimits ?? DEFAULT_ARCHIVE_LIMITS,
            {
              // A big archive takes a while: heartbeat so Temporal does not start another copy, and stop on cancel.
              signal: ctx.cancellationSignal,
              onProgress: (p) => ctx.heartbeat({ phase: 'extracting', attempt, ...p }),
              scratchDir: jobRoot,
            },
          );
        } catch (err) {
          if (err instanceof ArchiveAborted) throw new CancelledFailure('job cancelled during extraction');
          if (err instanceof ArchiveError) {
            throw ApplicationFailure.create({
              type: ErrorType.InvalidRequest,
              nonRetryable: true,
              message: err.message,
            });
          }
          throw err;
        }
        const inputJson =
          (await durably('preparing', () => deps.storage.getObjectBytes(input.inputKey))) ??
          new TextEncoder().encode('null');
        await fs.writeFile(path.join(jobDir, 'input.json'), inputJson, { mode: 0o644 });

        const token = randomBytes(24).toString('hex');
        let calls = 0;
        gateway = await startGateway({
          client: deps.client,
          workflowId: input.workflowId,
          socketPath: path.join(gatewayDir, 'gateway.sock'),
          token,
          onCall: () => calls++,
          logger: deps.logger?.child({ jobId: input.jobId, attempt }),
        });
        ctx.heartbeat({ phase: 'running', attempt });
        const run = await runContainer(
          deps.docker,
          {
            image: deps.image,
            jobId: input.jobId,
            executorId: deps.executorId,
            cmd: ['python3', `${CONTAINER_PATHS.sdk}/_ainode_run.py`, input.entry],
            env: {
              AINODE_JOB_ID: input.jobId,
              AINODE_JOB_TOKEN: token,
              AINODE_GATEWAY_SOCKET: CONTAINER_PATHS.gatewaySocket,
              AINODE_MODEL: input.modelId,
              AINODE_WORK_DIR: CONTAINER_PATHS.work,
              AINODE_OUT_DIR: CONTAINER_PATHS.out,
              PYTHONPATH: CONTAINER_PATHS.sdk,
              PYTHONUNBUFFERED: '1',
              PYTHONDONTWRITEBYTECODE: '1',
              HOME: CONTAINER_PATHS.work,
            },
            mounts: { sdkDir, jobDir, outDir, gatewayDir },
            user: '10001:10001',
            memoryMb: input.limits.memoryMb,
            cpus: input.limits.cpus,
            pidsLimit: input.limits.pidsLimit,
            timeoutMs: input.limits.timeoutMs,
            outputLimitBytes: input.limits.outputLimitBytes,
            outQuota: { ...outQuota, mounted: outMounted },
            maxFileBytes: outQuota.bytes,
          },
          {
            signal: ctx.cancellationSignal,
            // Heartbeats carry progress, and are how a cancel reaches this activity.
            onProgress: (p) => ctx.heartbeat({ phase: 'running', attempt, calls, ...p }),
            progressIntervalMs: 1000,
          },
        );
        if (run.killedBy === 'cancel') throw new CancelledFailure('job cancelled: container killed');
        ctx.heartbeat({ phase: 'collecting', attempt });
        // Past its quota, /out is not collected: the job failed, and what it holds is the flood.
        const outputs =
          run.killedBy === 'disk_limit'
            ? []
            : await collectOutputs(
                (key, body) => durably('collecting', () => deps.storage.putObject(key, body)),
                outDir,
                input.outputPrefix,
              );
        if (run.killedBy === 'disk_limit') {
          run.stderr += `\n[ainode] killed: /out reached its quota (${outQuota.bytes} bytes, ${outQuota.inodes} entries)\n`;
        }
        const logs = await Promise.all(
          (['stdout', 'stderr'] as const).map(async (stream) => {
            const text = run[stream];
            if (Buffer.byteLength(text) <= INLINE_LOG_BYTES) return { text, key: undefined };
            const key = `jobs/${input.jobId}/logs/${stream}.txt`;
            await durably('collecting', () => deps.storage.putObject(key, text, 'text/plain; charset=utf-8'));
            const head = Buffer.from(text).subarray(0, INLINE_LOG_BYTES).toString('utf8');
            return { text: head, key };
          }),
        );
        deps.logger?.info({ jobId: input.jobId, exitCode: run.exitCode, killedBy: run.killedBy }, 'job container done');
        return {
          exitCode: run.exitCode,
          stdout: logs[0]!.text,
          stderr: logs[1]!.text,
          stdoutKey: logs[0]!.key,
          stderrKey: logs[1]!.key,
          stdoutTruncated: run.stdoutTruncated,
          stderrTruncated: run.stderrTruncated,
          timedOut: run.killedBy === 'timeout',
          oomKilled: run.oomKilled,
          killedBy: run.killedBy,
          durationMs: run.durationMs,
          outputs,
        };
      } finally {
        await gateway?.close();
        if (outMounted) await unmountQuotaDir(outDir);
        await fs.rm(jobRoot, { recursive: true, force: true }).catch(() => undefined);
        await fs.rm(gatewayDir, { recursive: true, force: true }).catch(() => undefined);
        release?.();
      }
    },
  };
}

export type ExecutorActivities = ReturnType<typeof createExecutorActivities>;

/** At executor start: remove containers and work dirs a previous life of this executor left behind. */
export async function cleanupExecutor(deps: Pick<ExecutorDeps, 'docker' | 'executorId' | 'workRoot' | 'socketDir'>) {
  const removed = await removeOrphans(deps.docker, deps.executorId);
  // /out quota mounts of a previous life, before their dirs can be removed.
  await unmountUnder(deps.workRoot);
  await fs.rm(deps.workRoot, { recursive: true, force: true }).catch(() => undefined);
  // Not a directory someone else made (e.g. under /tmp) and could swap or read: ours, or refuse to start.
  await ensurePrivateDir(deps.workRoot);
  await ensurePrivateDir(deps.socketDir);
  return removed;
}
