import { ApplicationFailure } from '@temporalio/common';
import { containerCreateOptions, CONTAINER_PATHS, LABEL_EXECUTOR, LABEL_JOB } from '../../lib/executor/container';
import { gatewayErrorOf } from '../../lib/executor/gateway';
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
    expect(opts.Labels).toEqual({ [LABEL_JOB]: 'job-1', [LABEL_EXECUTOR]: 'exec-1' });
  });

  it('mounts the SDK and the package read-only, the work dir as tmpfs, the gateway directory at a fixed path', () => {
    expect(host.Binds).toEqual([
      `/h/sdk:${CONTAINER_PATHS.sdk}:ro`,
      `/h/in:${CONTAINER_PATHS.job}:ro`,
      `/h/out:${CONTAINER_PATHS.out}:rw`,
      `/h/gw:${CONTAINER_PATHS.gatewayDir}:rw`,
    ]);
    expect(host.Tmpfs![CONTAINER_PATHS.work]).toMatch(/^rw,nosuid,nodev,size=\d+m,uid=10001/);
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
