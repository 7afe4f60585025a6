/**
 * Attacks from inside a job container, on the real Docker engine with the real S3/DynamoDB emulator: disk
 * and inode floods of /out, /work and /tmp, the sandbox's edges (seccomp, ulimits, the gateway socket,
 * device files, links, the network), fork bomb, memory hog, endless loop, output flood, and an executor
 * that dies mid-job. Each asserts the harm did not happen on the host, not only that an error came back.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { cleanupExecutor, createExecutorActivities } from '../../activities/executor';
import {
  CONTAINER_PATHS,
  REAP_GRACE_MS,
  containersOfJob,
  reapExpired,
  removeOrphans,
  type ContainerSpec,
} from '../../lib/executor/container';
import type { ContainerResult, JobLimits, RunContainerInput } from '../../contracts/jobs';
import { services, testConfig, uid } from '../helpers/env';
import { buildZip } from '../fixtures/jobs/zips';

jest.setTimeout(120_000);

const LIMITS: JobLimits = {
  timeoutMs: 20_000,
  memoryMb: 128,
  cpus: 1,
  pidsLimit: 32,
  outputLimitBytes: 64 * 1024,
  maxLlmCalls: 10,
  maxTokens: 10_000,
};
const QUOTA = { bytes: 8 * 1_048_576, inodes: 50 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Free bytes and inodes of the host filesystem under `dir`. */
function free(dir: string) {
  const st = statfsSync(dir);
  return { bytes: st.bavail * st.bsize, inodes: st.ffree };
}

/** Samples the host's free space under `dir` while `work` runs; returns the largest drop seen. */
async function worstDrop<T>(dir: string, work: Promise<T>): Promise<{ value: T; bytes: number; inodes: number }> {
  const before = free(dir);
  let bytes = 0;
  let inodes = 0;
  const sample = () => {
    const now = free(dir);
    bytes = Math.max(bytes, before.bytes - now.bytes);
    inodes = Math.max(inodes, before.inodes - now.inodes);
  };
  const timer = setInterval(sample, 50);
  try {
    const value = await work;
    sample();
    return { value, bytes, inodes };
  } finally {
    clearInterval(timer);
  }
}

function processCount(): number {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}

describe('attacks from inside a job container (real Docker)', () => {
  const docker = new Docker();
  const executorId = uid('exec');
  const base = path.join(os.tmpdir(), uid('ainode-sec'));
  const workRoot = path.join(base, 'work');
  const socketDir = path.join(base, 'sock');
  let storage: Storage;
  let activities: ReturnType<typeof createExecutorActivities>;

  beforeAll(async () => {
    const config = testConfig({ S3_BUCKET: uid('bkt').toLowerCase(), DYNAMO_TABLE_PREFIX: `${uid('p')}-` });
    storage = createStorage(config);
    await ensureStorage(storage);
    const deps = {
      docker,
      storage,
      client: { workflow: { getHandle: () => ({}) } } as unknown as Client,
      executorId,
      image: services.runtimeImage,
      workRoot,
      socketDir,
      outQuota: QUOTA,
    };
    await cleanupExecutor(deps);
    activities = createExecutorActivities(deps);
  });
  afterAll(async () => {
    await removeOrphans(docker, executorId);
    storage.close();
  });

  async function run(source: string, limits: Partial<JobLimits> = {}) {
    const jobId = uid('job');
    const packageKey = `functions/sec/${jobId}.zip`;
    await storage.putObject(packageKey, await buildZip([{ name: 'main.py', data: source }]));
    await storage.putObject(`jobs/${jobId}/input.json`, 'null');
    const input: RunContainerInput = {
      jobId,
      workflowId: jobId,
      packageKey,
      entry: 'main.py',
      modelId: 'm',
      inputKey: `jobs/${jobId}/input.json`,
      outputPrefix: `jobs/${jobId}/out/`,
      limits: { ...LIMITS, ...limits },
    };
    const env = new MockActivityEnvironment();
    const result = (await env.run(activities.runJobContainer, input)) as ContainerResult;
    // Whatever happened inside: no container left, no work dir, no quota mount left on the host.
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    expect(readdirSync(workRoot)).toEqual([]);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(workRoot);
    return { jobId, result };
  }

  it('/out disk flood: killed at the quota, the host disk does not fill', async () => {
    const flood = `
import os
chunk = b"x" * 65536
n = 0
while True:
    try:
        with open("/out/big%d" % (n % 20), "ab") as f:
            f.write(chunk)
    except OSError:
        pass
    n += 1
`;
    const { value, bytes } = await worstDrop(workRoot, run(flood));
    expect(value.result.killedBy).toBe('disk_limit');
    expect(value.result.outputs).toEqual([]);
    expect(value.result.stderr).toContain('/out reached its quota');
    // The script would write for 20 s at disk speed; the host lost at most a few quota's worth, if anything.
    expect(bytes).toBeLessThan(512 * 1_048_576);
  });

  it('/out inode flood: killed at the quota, the host keeps its inodes', async () => {
    const flood = `
import os
n = 0
while True:
    try:
        os.makedirs("/out/d%d" % (n // 1000), exist_ok=True)
        open("/out/d%d/f%d" % (n // 1000, n), "w").close()
    except OSError:
        pass
    n += 1
`;
    const { value, inodes } = await worstDrop(workRoot, run(flood));
    expect(value.result.killedBy).toBe('disk_limit');
    expect(inodes).toBeLessThan(100_000);
  });

  it('/work and /tmp floods hit their tmpfs limits (ENOSPC) inside; the host disk is untouched', async () => {
    const flood = `
import errno, os
for d in ("/work", "/tmp"):
    try:
        f = open(os.path.join(d, "big"), "wb")
        while True:
            f.write(b"x" * 1048576)
    except OSError as e:
        print(d, "one file stops at", errno.errorcode[e.errno])
    try:
        # Files under the fsize ulimit each, until the tmpfs is full.
        for n in range(10**6):
            with open(os.path.join(d, "fill%d" % n), "wb") as f:
                for _ in range(4):
                    f.write(b"x" * 1048576)
    except OSError as e:
        print(d, "bytes full", errno.errorcode[e.errno])
    for n in os.listdir(d):
        if n.startswith(("fill", "big")):
            os.unlink(os.path.join(d, n))
    try:
        for i in range(10**7):
            open(os.path.join(d, "i%d" % i), "w").close()
    except OSError as e:
        print(d, "inodes full", errno.errorcode[e.errno], i < 10**7)
`;
    const { value, bytes } = await worstDrop(workRoot, run(flood, { memoryMb: 256 }));
    const out = value.result.stdout;
    // One file stops at the fsize ulimit (the /out quota, 8 MB here); many stop at the tmpfs size.
    expect(out).toContain('/work one file stops at EFBIG');
    expect(out).toContain('/tmp one file stops at EFBIG');
    expect(out).toContain('/work bytes full ENOSPC');
    expect(out).toContain('/tmp bytes full ENOSPC');
    expect(out).toContain('/work inodes full ENOSPC True');
    expect(out).toContain('/tmp inodes full ENOSPC True');
    expect(bytes).toBeLessThan(256 * 1_048_576);
  });

  it('the sandbox edges: seccomp, ulimits, init as PID 1, read-only gateway dir, no devices, no links out', async () => {
    const probe = `
import errno, os, resource, stat
def err(f):
    try:
        f(); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
status = open("/proc/self/status").read()
print("seccomp", [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")][0])
print("nofile", resource.getrlimit(resource.RLIMIT_NOFILE))
print("core", resource.getrlimit(resource.RLIMIT_CORE))
print("fsize", resource.getrlimit(resource.RLIMIT_FSIZE)[0])
print("pid1", open("/proc/1/cmdline").read().split("\\0")[0])
print("gw-list", sorted(os.listdir("${CONTAINER_PATHS.gatewayDir}")))
print("gw-unlink", err(lambda: os.unlink("${CONTAINER_PATHS.gatewaySocket}")))
print("gw-create", err(lambda: open("${CONTAINER_PATHS.gatewayDir}/x", "w")))
print("mknod", err(lambda: os.mknod("/out/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))))
print("hardlink", err(lambda: os.link("/etc/passwd", "/out/passwd")))
os.symlink("/etc/passwd", "/out/passwd-link")
socks = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys")):
        dirs[:] = []
        continue
    socks += [os.path.join(root, f) for f in files if stat.S_ISSOCK(os.lstat(os.path.join(root, f)).st_mode)]
print("sockets", socks)
print("token-in-env", "AINODE_JOB_TOKEN" in os.environ)
`;
    const { result } = await run(probe);
    const out = result.stdout;
    expect(result.stderr).toBe('');
    expect(out).toContain('seccomp 2');
    expect(out).toContain('nofile (1024, 1024)');
    expect(out).toContain('core (0, 0)');
    expect(out).toContain(`fsize ${QUOTA.bytes}`);
    expect(out).toMatch(/pid1 \S*(docker-init|tini)/);
    expect(out).toContain("gw-list ['gateway.sock']");
    expect(out).toContain('gw-unlink EROFS');
    expect(out).toContain('gw-create EROFS');
    expect(out).toContain('mknod EPERM');
    expect(out).toMatch(/hardlink (EXDEV|EPERM)/);
    // The only socket in reach is this job's own gateway.
    expect(out).toContain(`sockets ['${CONTAINER_PATHS.gatewaySocket}']`);
    // Nothing of the host's (or the image's) /etc/passwd left through the planted link.
    expect(result.outputs).toEqual([]);
  });

  it("another job's socket: a local non-root user cannot list the gateway dir to find it", async () => {
    const listing = spawnSync('ls', [socketDir], { uid: 10001, gid: 10001, encoding: 'utf8' });
    expect(listing.status).not.toBe(0);
    expect(listing.stderr).toMatch(/Permission denied/);
    const work = spawnSync('ls', [workRoot], { uid: 10001, gid: 10001, encoding: 'utf8' });
    expect(work.status).not.toBe(0);
  });

  it('network access: nothing is reachable, not even the host', async () => {
    const probe = `
import socket
for host, port in (("1.1.1.1", 53), ("172.17.0.1", 2375), ("127.0.0.1", 7233)):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); print("reached", host)
    except OSError as e:
        print("blocked", host)
print("interfaces", sorted(n for _, n in socket.if_nameindex()))
`;
    const { result } = await run(probe);
    expect(result.stdout).not.toContain('reached');
    expect(result.stdout).toContain("interfaces ['lo']");
  });

  it('fork bomb: the host process count stays bounded; killed at the time limit', async () => {
    const bomb = `
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
`;
    const before = processCount();
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, processCount())), 100);
    const { result } = await run(bomb, { pidsLimit: 32, timeoutMs: 4000 }).finally(() => clearInterval(timer));
    expect(result.killedBy).toBe('timeout');
    // The pids limit (32) holds; other work on this machine explains the generous slack.
    expect(peak - before).toBeLessThan(32 + 150);
  });

  it('memory hog: OOM-killed at its limit', async () => {
    const hog = `
blocks = []
while True:
    blocks.append(bytearray(16 * 1024 * 1024))
`;
    const { result } = await run(hog, { memoryMb: 64 });
    expect(result.oomKilled).toBe(true);
    expect(result.exitCode).toBe(137);
  });

  it('endless loop: killed at the wall-clock limit, container gone', async () => {
    const { result } = await run('while True:\n    pass\n', { timeoutMs: 3000 });
    expect(result.killedBy).toBe('timeout');
    expect(result.timedOut).toBe(true);
  });

  it('output flood: captured up to the cap, then killed', async () => {
    const { result } = await run('import sys\nwhile True:\n    sys.stdout.write("y" * 65536)\n', {
      outputLimitBytes: 100_000,
    });
    expect(result.killedBy).toBe('output_limit');
    expect(Buffer.byteLength(result.stdout)).toBe(100_000);
  });

  it('executor killed mid-job: the container still dies at its time limit, and the reaper removes it', async () => {
    const jobId = uid('orphan');
    const spec: ContainerSpec = {
      image: services.runtimeImage,
      jobId,
      executorId: uid('dead-exec'),
      cmd: ['python3', '-c', 'while True: pass'],
      env: {},
      mounts: {
        sdkDir: path.join(base, 'none-sdk'),
        jobDir: path.join(base, 'none-in'),
        outDir: path.join(base, 'none-out'),
        gatewayDir: path.join(base, 'none-gw'),
      },
      user: '10001:10001',
      memoryMb: 64,
      cpus: 0.5,
      pidsLimit: 16,
      timeoutMs: 3000,
      outputLimitBytes: 10_000,
    };
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '../fixtures/security/container-child.ts'), JSON.stringify(spec)],
      { stdio: 'ignore' },
    );
    try {
      // Wait for its container to run, then kill the "executor" outright.
      let id: string | undefined;
      for (let i = 0; i < 120 && !id; i++) {
        await sleep(250);
        const [c] = await docker.listContainers({ filters: JSON.stringify({ label: [`ainode.job=${jobId}`] }) });
        if (c?.State === 'running') id = c.Id;
      }
      expect(id).toBeDefined();
      child.kill('SIGKILL');
      // Nobody outside enforces the limit now: the init inside ends it (3 s + slack), well within 60 s.
      let state = await docker.getContainer(id!).inspect();
      for (let i = 0; i < 240 && state.State.Running; i++) {
        await sleep(250);
        state = await docker.getContainer(id!).inspect();
      }
      expect(state.State.Running).toBe(false);
      expect(state.State.ExitCode).toBe(137);
      // Not yet past its deadline (limit + grace): the reaper leaves it; past it, any executor removes it.
      expect(await reapExpired(docker, 60_000, { jobId })).toEqual([]);
      const later = Date.now() + spec.timeoutMs + REAP_GRACE_MS + 1000;
      expect(await reapExpired(docker, 60_000, { jobId, now: later })).toEqual([id]);
      expect(await containersOfJob(docker, jobId)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      for (const c of await containersOfJob(docker, jobId)) await docker.getContainer(c).remove({ force: true });
    }
  });
});
