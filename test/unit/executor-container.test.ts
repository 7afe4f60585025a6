import { ApplicationFailure } from '@temporalio/common';
import {
  containerCreateOptions,
  CONTAINER_PATHS,
  LABEL_DEADLINE,
  LABEL_EXECUTOR,
  LABEL_JOB,
} from '../../lib/executor/container';
import { gatewayErrorOf, scrubAddresses } from '../../lib/executor/gateway';
import { ErrorType } from '../../common/errors';

describe('container lockdown options', () => {
  const opts = containerCreateOptions({
    image: 'img',
    jobId: 'job-1',
    executorId: 'exec-1',
    cmd: ['python3', 'x.py'],
    env: { A: '1' },
    mounts: { sdkDir: '/h/sdk', jobDir: '/h/in', outDir: '/h/out', gatewayDir: '/h/gw' },
    user: '10001:10001',
    memoryMb: 256,
    cpus: 0.5,
    pidsLimit: 64,
    timeoutMs: 1000,
    outputLimitBytes: 1000,
    deadlineAt: 123_456,
    maxFileBytes: 4096,
  });
  const host = opts.HostConfig!;

  it('has no network, a read-only root, no capabilities and no privilege gain', () => {
    expect(opts.NetworkDisabled).toBe(true);
    expect(host.NetworkMode).toBe('none');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd).toBeUndefined();
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host.Privileged).toBeUndefined();
    expect(opts.User).toBe('10001:10001');
  });

  it('limits pids, memory without swap, CPU and logs; labels it for orphan cleanup', () => {
    expect(host.PidsLimit).toBe(64);
    expect(host.Memory).toBe(256 * 1_048_576);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } });
    expect(opts.Labels).toEqual({ [LABEL_JOB]: 'job-1', [LABEL_EXECUTOR]: 'exec-1', [LABEL_DEADLINE]: '123456' });
  });

  it('runs the command under an init with a hard kill at the wall-clock limit (plus slack), and sets ulimits', () => {
    expect(host.Init).toBe(true);
    expect(opts.Cmd).toEqual(['timeout', '-s', 'KILL', '3.0', 'python3', 'x.py']);
    expect(host.Ulimits).toEqual([
      { Name: 'nofile', Soft: 1024, Hard: 1024 },
      { Name: 'core', Soft: 0, Hard: 0 },
      { Name: 'fsize', Soft: 4096, Hard: 4096 },
    ]);
    expect(host.SecurityOpt!.some((o: string) => o.includes('unconfined'))).toBe(false);
  });

  it('mounts the SDK and the package read-only, the work dir as tmpfs, the gateway directory at a fixed path', () => {
    expect(host.Binds).toEqual([
      `/h/sdk:${CONTAINER_PATHS.sdk}:ro`,
      `/h/in:${CONTAINER_PATHS.job}:ro`,
      `/h/out:${CONTAINER_PATHS.out}:rw`,
      `/h/gw:${CONTAINER_PATHS.gatewayDir}:ro`,
    ]);
    expect(host.Tmpfs![CONTAINER_PATHS.work]).toMatch(/^rw,nosuid,nodev,size=\d+m,nr_inodes=\d+,uid=10001/);
    expect(host.Tmpfs!['/tmp']).toMatch(/size=\d+m,nr_inodes=\d+/);
    expect(opts.WorkingDir).toBe('/work');
  });
});

describe('gateway error mapping', () => {
  const fail = (type: string) => ApplicationFailure.create({ type, message: `m-${type}`, nonRetryable: true });
  it.each([
    [ErrorType.LimitExceeded, 429, 'limit_exceeded'],
    [ErrorType.ModelNotFound, 400, 'model_not_found'],
    [ErrorType.InvalidRequest, 400, 'invalid_request'],
    [ErrorType.NodeUnavailable, 503, 'node_unavailable'],
    ['SomethingElse', 502, 'llm_failed'],
  ])('%s → %i %s', (type, status, code) => {
    const g = gatewayErrorOf(fail(type));
    expect([g.status, g.code, g.message]).toEqual([status, code, `m-${type}`]);
  });
});

describe('gateway error text', () => {
  it('carries no internal addresses', () => {
    const text = scrubAddresses(
      'connect ECONNREFUSED 10.0.3.7:11434 at http://ollama-gpu1:11434/api/chat; temporal at temporal:7233, [::1]:7233',
    );
    expect(text).not.toMatch(/10\.0\.3\.7|ollama-gpu1|11434|7233|::1/);
    expect(text).toContain('ECONNREFUSED');
  });

  it('reports a failure that is not an ApplicationFailure without its text', () => {
    const g = gatewayErrorOf(new Error('14 UNAVAILABLE: No connection established to temporal.internal:7233'));
    expect(g.status).toBe(502);
    expect(g.message).not.toContain('temporal.internal');
  });
});
