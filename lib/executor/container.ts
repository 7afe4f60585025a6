/**
 * One locked-down container run: no network, read-only root, tmpfs work dir, every capability dropped,
 * no-new-privileges, Docker's default seccomp profile, a non-root user, pids/memory(=swap)/CPU limits,
 * nofile/core/fsize ulimits and a bounded log driver. Output is demuxed from the attach stream with a cap per
 * stream (overflow kills the container), a wall-clock timer kills it too, and so does an init inside the
 * container (tini as PID 1 running `timeout -s KILL`), so the limit holds even if this process dies. A
 * watcher kills it when `/out` reaches its quota. OOM comes from inspect; the container is removed whatever
 * happens, and a reaper on any executor removes labelled containers past their deadline.
 */
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { outUsage, type OutQuota } from './quota';

export const LABEL_JOB = 'ainode.job';
export const LABEL_EXECUTOR = 'ainode.executor';
/** Epoch ms after which the container has outlived its job's wall-clock limit: any executor's reaper removes it. */
export const LABEL_DEADLINE = 'ainode.deadline';
/** The in-container kill fires this long after the executor's own timer, so the executor normally reports it. */
export const INNER_TIMEOUT_SLACK_MS = 2000;
/** Time past the wall-clock limit before a reaper removes a container (start-up, collection, clock skew). */
export const REAP_GRACE_MS = 60_000;
/** Open files per process: enough for any script, not enough to exhaust the host's file table. */
export const NOFILE_LIMIT = 1024;

/** Mount points inside the container (fixed, so the SDK knows them). */
export const CONTAINER_PATHS = {
  sdk: '/opt/ainode',
  job: '/job',
  work: '/work',
  out: '/out',
  gatewayDir: '/run/ainode',
  gatewaySocket: '/run/ainode/gateway.sock',
} as const;

export interface ContainerSpec {
  image: string;
  jobId: string;
  executorId: string;
  cmd: string[];
  env: Record<string, string>;
  /** Host directories bind-mounted into the container. */
  mounts: { sdkDir: string; jobDir: string; outDir: string; gatewayDir: string };
  user: string;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  timeoutMs: number;
  outputLimitBytes: number;
  /** Size of the tmpfs work dir (counts against the memory limit). */
  workDirMb?: number;
  /** Quota on the host's /out dir: the watcher kills the container when it is reached. */
  outQuota?: OutQuota;
  /** Largest file a process may write (RLIMIT_FSIZE, bytes). */
  maxFileBytes?: number;
  /** Epoch ms for the deadline label (default: now + timeoutMs + REAP_GRACE_MS). */
  deadlineAt?: number;
}

export interface RunOutcome {
  containerId: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  oomKilled: boolean;
  killedBy?: 'timeout' | 'output_limit' | 'cancel' | 'disk_limit';
  durationMs: number;
}

export interface RunHooks {
  /** Aborting kills the container (activity cancellation). */
  signal?: AbortSignal;
  /** Called with live byte counts while the container runs. */
  onProgress?: (p: { elapsedMs: number; stdoutBytes: number; stderrBytes: number }) => void;
  progressIntervalMs?: number;
}

/** Collects at most `limit` bytes; past it records truncation and calls `onOverflow` once. */
class CappedSink extends Writable {
  private chunks: Buffer[] = [];
  bytes = 0;
  kept = 0;
  truncated = false;
  constructor(
    private readonly limit: number,
    private readonly onOverflow: () => void,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
    this.bytes += chunk.length;
    const room = this.limit - this.kept;
    if (room > 0) {
      const piece = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(piece);
      this.kept += piece.length;
    }
    if (this.bytes > this.limit && !this.truncated) {
      this.truncated = true;
      this.onOverflow();
    }
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The command wrapped in `timeout -s KILL` (run under tini as PID 1): the wall-clock limit inside the container. */
export function withInnerTimeout(cmd: string[], timeoutMs: number): string[] {
  const seconds = ((timeoutMs + INNER_TIMEOUT_SLACK_MS) / 1000).toFixed(1);
  return ['timeout', '-s', 'KILL', seconds, ...cmd];
}

export function containerCreateOptions(spec: ContainerSpec): Docker.ContainerCreateOptions {
  const memory = spec.memoryMb * 1_048_576;
  const fsize = spec.maxFileBytes ?? 100 * 1_048_576;
  const deadline = spec.deadlineAt ?? Date.now() + spec.timeoutMs + REAP_GRACE_MS;
  return {
    Image: spec.image,
    Cmd: withInnerTimeout(spec.cmd, spec.timeoutMs),
    User: spec.user,
    WorkingDir: CONTAINER_PATHS.work,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { [LABEL_JOB]: spec.jobId, [LABEL_EXECUTOR]: spec.executorId, [LABEL_DEADLINE]: String(deadline) },
    NetworkDisabled: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      NetworkMode: 'none',
      // tini as PID 1: it reaps zombies and, when `timeout` kills the script's group, the container ends.
      Init: true,
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      // The engine's default seccomp profile applies unless a run opts out; the executor checks at start that
      // the engine has one (assertEngineSandbox) and no run ever passes seccomp=unconfined.
      SecurityOpt: ['no-new-privileges'],
      Ulimits: [
        { Name: 'nofile', Soft: NOFILE_LIMIT, Hard: NOFILE_LIMIT },
        { Name: 'core', Soft: 0, Hard: 0 },
        { Name: 'fsize', Soft: fsize, Hard: fsize },
      ],
      PidsLimit: spec.pidsLimit,
      Memory: memory,
      // Equal to Memory: no swap, so a memory hog hits the OOM killer instead of thrashing.
      MemorySwap: memory,
      NanoCpus: Math.round(spec.cpus * 1e9),
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
      Tmpfs: {
        [CONTAINER_PATHS.work]: `rw,nosuid,nodev,size=${spec.workDirMb ?? 64}m,nr_inodes=4096,uid=10001,gid=10001,mode=0700`,
        '/tmp': 'rw,nosuid,nodev,noexec,size=16m,nr_inodes=1024,mode=1777',
      },
      Binds: [
        `${spec.mounts.sdkDir}:${CONTAINER_PATHS.sdk}:ro`,
        `${spec.mounts.jobDir}:${CONTAINER_PATHS.job}:ro`,
        `${spec.mounts.outDir}:${CONTAINER_PATHS.out}:rw`,
        // Read-only: the script can connect to the socket but not replace or add files next to it.
        `${spec.mounts.gatewayDir}:${CONTAINER_PATHS.gatewayDir}:ro`,
      ],
      AutoRemove: false,
    },
  };
}

async function removeQuietly(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    // 404: already gone; 409: removal already in progress.
    if (status !== 404 && status !== 409) throw err;
  }
}

/** Runs the container to completion (or kill) and always removes it. */
export async function runContainer(docker: Docker, spec: ContainerSpec, hooks: RunHooks = {}): Promise<RunOutcome> {
  const container = await docker.createContainer(containerCreateOptions(spec));
  let killedBy: RunOutcome['killedBy'];
  let killing: Promise<void> | undefined;
  const sigkill = () =>
    container.kill({ signal: 'SIGKILL' }).then(
      () => undefined,
      () => undefined, // already exited, or not started yet (then we kill it once it has started, below)
    );
  const kill = (why: NonNullable<RunOutcome['killedBy']>) => {
    if (killedBy) return;
    killedBy = why;
    killing = sigkill();
  };
  const out = new CappedSink(spec.outputLimitBytes, () => kill('output_limit'));
  const err = new CappedSink(spec.outputLimitBytes, () => kill('output_limit'));
  let timer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let watcher: NodeJS.Timeout | undefined;
  const onAbort = () => kill('cancel');
  const started = Date.now();
  try {
    // Attach before start so not a byte of output is missed.
    const stream = await container.attach({ stream: true, stdout: true, stderr: true, logs: false });
    const streamEnded = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    docker.modem.demuxStream(stream, out, err);
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal?.aborted) onAbort();
    if (killedBy === 'cancel') {
      // Cancelled before it ran: it never starts (and is removed below).
      return {
        containerId: container.id,
        exitCode: null,
        stdout: '',
        stderr: '',
        stdoutTruncated: false,
        stderrTruncated: false,
        oomKilled: false,
        killedBy,
        durationMs: Date.now() - started,
      };
    }
    await container.start();
    // A cancel that came while it was starting found nothing to kill yet: kill it now.
    if (killedBy) killing = sigkill();
    timer = setTimeout(() => kill('timeout'), spec.timeoutMs);
    if (spec.outQuota) {
      const quota = spec.outQuota;
      let checking = false;
      watcher = setInterval(() => {
        if (checking || killedBy) return;
        checking = true;
        outUsage(spec.mounts.outDir, quota)
          .then((u) => {
            if (u.over) kill('disk_limit');
          })
          .catch(() => undefined)
          .finally(() => (checking = false));
      }, quota.checkIntervalMs ?? 250);
    }
    if (hooks.onProgress) {
      const progress = hooks.onProgress;
      ticker = setInterval(
        () => progress({ elapsedMs: Date.now() - started, stdoutBytes: out.bytes, stderrBytes: err.bytes }),
        hooks.progressIntervalMs ?? 2000,
      );
    }
    const waited = (await container.wait()) as { StatusCode?: number };
    const durationMs = Date.now() - started;
    clearTimeout(timer);
    clearInterval(watcher);
    await killing;
    // The attach stream ends right after the process; a short grace keeps a wedged stream from hanging us.
    await Promise.race([streamEnded, new Promise((r) => setTimeout(r, 2000))]);
    const info = await container.inspect();
    // The in-container `timeout` fired (SIGKILL, 137) before our timer could, e.g. on a busy host.
    if (!killedBy && info.State.ExitCode === 137 && !info.State.OOMKilled && durationMs >= spec.timeoutMs) {
      killedBy = 'timeout';
    }
    return {
      containerId: container.id,
      exitCode: info.State.ExitCode ?? waited.StatusCode ?? null,
      stdout: out.text(),
      stderr: err.text(),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      oomKilled: Boolean(info.State.OOMKilled),
      killedBy,
      durationMs,
    };
  } finally {
    clearTimeout(timer);
    clearInterval(ticker);
    clearInterval(watcher);
    hooks.signal?.removeEventListener('abort', onAbort);
    await removeQuietly(container);
  }
}

/**
 * Removes containers left by a previous life of this executor (it died mid-job, so nobody will collect
 * them). Returns the ids removed.
 */
export async function removeOrphans(docker: Docker, executorId: string): Promise<string[]> {
  const list = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`${LABEL_EXECUTOR}=${executorId}`] }),
  });
  await Promise.all(list.map((c) => removeQuietly(docker.getContainer(c.Id))));
  return list.map((c) => c.Id);
}

/** Containers of one job still present (tests and diagnostics). */
export async function containersOfJob(docker: Docker, jobId: string): Promise<string[]> {
  const list = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`${LABEL_JOB}=${jobId}`] }),
  });
  return list.map((c) => c.Id);
}

/**
 * Removes job containers (of any executor) whose deadline label has passed: their executor died or lost
 * them, and the in-container kill did not end them. Containers without a deadline label (older executors)
 * count from their creation time plus `maxAgeMs`. Returns the ids removed.
 */
export async function reapExpired(
  docker: Docker,
  maxAgeMs: number,
  opts: { now?: number; jobId?: string } = {},
): Promise<string[]> {
  const now = opts.now ?? Date.now();
  const label = opts.jobId ? `${LABEL_JOB}=${opts.jobId}` : LABEL_JOB;
  const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [label] }) });
  const expired = list.filter((c) => {
    const labelled = Number(c.Labels?.[LABEL_DEADLINE]);
    const deadline = Number.isFinite(labelled) && labelled > 0 ? labelled : c.Created * 1000 + maxAgeMs;
    return deadline < now;
  });
  await Promise.all(expired.map((c) => removeQuietly(docker.getContainer(c.Id))));
  return expired.map((c) => c.Id);
}

/**
 * Fails fast when the engine would run jobs with less isolation than containerCreateOptions assumes: no
 * seccomp profile (an engine built or started without one). Jobs then get the engine's default profile.
 */
export async function assertEngineSandbox(docker: Docker): Promise<void> {
  const info = (await docker.info()) as { SecurityOptions?: string[] };
  const opts = info.SecurityOptions ?? [];
  const seccomp = opts.find((o) => o.includes('name=seccomp'));
  if (!seccomp || seccomp.includes('profile=unconfined')) {
    throw new Error(`the Docker engine has no seccomp profile (${opts.join('; ') || 'none'}): refusing to run jobs`);
  }
}
