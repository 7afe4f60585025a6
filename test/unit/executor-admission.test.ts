import { mkdirSync, mkdtempSync, rmSync, symlinkSync, chmodSync, chownSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Admission, AdmissionRefused, tenantOfPackage } from '../../lib/executor/admission';
import { ensurePrivateDir, UnsafeDirError } from '../../lib/executor/dirs';
import { outUsage } from '../../lib/executor/quota';
import { writeFileSync } from 'node:fs';

const tick = () => new Promise((r) => setImmediate(r));

describe('executor admission', () => {
  it('holds a job until the memory budget has room, then starts it', async () => {
    const a = new Admission({ memoryBudgetMb: 1000, maxJobsPerTenant: 10 });
    const r1 = await a.acquire({ tenantId: 't1', memoryMb: 600 });
    let started = false;
    const p = a.acquire({ tenantId: 't2', memoryMb: 600 }).then((r) => ((started = true), r));
    await tick();
    expect(started).toBe(false);
    expect(a.snapshot()).toEqual({ usedMb: 600, waiting: 1, perTenant: { t1: 1 } });
    r1();
    const r2 = await p;
    expect(a.snapshot().usedMb).toBe(600);
    r2();
    expect(a.snapshot()).toEqual({ usedMb: 0, waiting: 0, perTenant: {} });
  });

  it('caps one tenant without holding back another', async () => {
    const a = new Admission({ memoryBudgetMb: 10_000, maxJobsPerTenant: 2 });
    await a.acquire({ tenantId: 'greedy', memoryMb: 100 });
    const second = await a.acquire({ tenantId: 'greedy', memoryMb: 100 });
    let third = false;
    void a.acquire({ tenantId: 'greedy', memoryMb: 100 }).then(() => (third = true));
    const other = await a.acquire({ tenantId: 'polite', memoryMb: 100 });
    await tick();
    expect(third).toBe(false);
    expect(a.snapshot().perTenant).toEqual({ greedy: 2, polite: 1 });
    second();
    await tick();
    expect(third).toBe(true);
    other();
  });

  it('refuses a job larger than the whole budget, and ends a wait on cancel', async () => {
    const a = new Admission({ memoryBudgetMb: 500, maxJobsPerTenant: 1 });
    await expect(a.acquire({ tenantId: 't', memoryMb: 501 })).rejects.toBeInstanceOf(AdmissionRefused);
    await a.acquire({ tenantId: 't', memoryMb: 100 });
    const ctrl = new AbortController();
    let beats = 0;
    const waiting = a.acquire(
      { tenantId: 't', memoryMb: 100 },
      { signal: ctrl.signal, onWait: () => beats++, waitTickMs: 5 },
    );
    await new Promise((r) => setTimeout(r, 30));
    ctrl.abort();
    await expect(waiting).rejects.toThrow(/cancelled/);
    expect(beats).toBeGreaterThan(0);
    expect(a.snapshot().waiting).toBe(0);
  });

  it('reads the tenant from the package key', () => {
    expect(tenantOfPackage('functions/acme/fn-1/v2.zip')).toBe('acme');
    expect(tenantOfPackage('elsewhere.zip')).toBe('unknown');
  });
});

describe('executor directories and /out usage', () => {
  let base: string;
  beforeEach(() => (base = mkdtempSync(path.join(os.tmpdir(), 'ainode-dirs-'))));
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('creates a private dir, and refuses a symlink or a dir whose parent others can write', async () => {
    await ensurePrivateDir(path.join(base, 'ok'));
    symlinkSync(path.join(base, 'ok'), path.join(base, 'link'));
    await expect(ensurePrivateDir(path.join(base, 'link'))).rejects.toBeInstanceOf(UnsafeDirError);
    mkdirSync(path.join(base, 'open'));
    chmodSync(path.join(base, 'open'), 0o777);
    await expect(ensurePrivateDir(path.join(base, 'open', 'x'))).rejects.toThrow(/writable by others/);
  });

  it('refuses a dir someone else created first', async () => {
    if (process.getuid?.() !== 0) return expect(process.getuid?.()).not.toBe(0);
    mkdirSync(path.join(base, 'theirs'));
    chownSync(path.join(base, 'theirs'), 12345, 12345);
    await expect(ensurePrivateDir(path.join(base, 'theirs'))).rejects.toThrow(/belongs to uid 12345/);
  });

  it('measures a plain /out dir and stops counting past the quota', async () => {
    writeFileSync(path.join(base, 'a'), Buffer.alloc(1000));
    mkdirSync(path.join(base, 'd'));
    for (let i = 0; i < 30; i++) writeFileSync(path.join(base, 'd', `f${i}`), 'x');
    expect(await outUsage(base, { bytes: 10_000, inodes: 100 })).toEqual({ bytes: 1030, entries: 32, over: false });
    const over = await outUsage(base, { bytes: 10_000, inodes: 10 });
    expect(over.over).toBe(true);
    expect(over.entries).toBe(11);
  });
});
