/**
 * The quota on a job's writable host directory (`/out`). Where the executor may mount (root with
 * CAP_SYS_ADMIN on the engine's own mount namespace), the dir is a tmpfs of the quota's size and inode count,
 * so the kernel stops a flood at the cap (ENOSPC) and the host's disk is never touched. Elsewhere (e.g. the
 * executor itself in a container without CAP_SYS_ADMIN) it is a plain dir and only the watcher bounds it:
 * it kills the container at the cap, so a flood overshoots by at most one check interval of writes.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface OutQuota {
  /** Bytes the script may write. */
  bytes: number;
  /** Files and directories the script may create. */
  inodes: number;
  /** True when the dir is a tmpfs mounted by mountQuotaDir (usage read from statfs). */
  mounted?: boolean;
  /** How often the watcher looks (default 250 ms). */
  checkIntervalMs?: number;
}

export interface OutUsage {
  bytes: number;
  entries: number;
  over: boolean;
}

/**
 * Mounts a tmpfs of the quota's size on `dir` (owned by `uid:gid`, nosuid/nodev/noexec). Returns false
 * where mounting is not allowed; the caller then relies on the watcher.
 */
export async function mountQuotaDir(dir: string, quota: OutQuota, uid: number, gid: number): Promise<boolean> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  // +1 inode: the tmpfs root itself counts.
  const opts = `size=${quota.bytes},nr_inodes=${quota.inodes + 1},mode=0700,uid=${uid},gid=${gid},nosuid,nodev,noexec`;
  try {
    await run('mount', ['-t', 'tmpfs', '-o', opts, 'ainode-out', dir], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Unmounts a dir mounted by mountQuotaDir (lazily when something still holds it). */
export async function unmountQuotaDir(dir: string): Promise<void> {
  try {
    await run('umount', [dir], { timeout: 10_000 });
  } catch {
    await run('umount', ['-l', dir], { timeout: 10_000 }).catch(() => undefined);
  }
}

/**
 * What the script has written under `dir`. On a quota tmpfs this is one statfs; on a plain dir a walk that
 * stops as soon as the quota is passed, so a directory of a million entries costs no more than the quota.
 */
export async function outUsage(dir: string, quota: OutQuota): Promise<OutUsage> {
  if (quota.mounted) {
    const st = await fs.statfs(dir);
    const bytes = (st.blocks - st.bfree) * st.bsize;
    const entries = Math.max(0, st.files - st.ffree - 1);
    return { bytes, entries, over: st.bfree === 0 || st.ffree === 0 || bytes >= quota.bytes };
  }
  let bytes = 0;
  let entries = 0;
  const over = () => bytes > quota.bytes || entries > quota.inodes;
  const walk = async (d: string): Promise<void> => {
    const handle = await fs.opendir(d, { bufferSize: 64 });
    try {
      for await (const e of handle) {
        entries++;
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) bytes += (await fs.lstat(p).catch(() => ({ size: 0 }))).size;
        if (over()) return;
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  };
  await walk(dir).catch(() => undefined);
  return { bytes, entries, over: over() };
}
