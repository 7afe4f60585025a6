/**
 * At executor start: gateway socket directories (`<GATEWAY_SOCKET_DIR>/<jobId>.<attempt>/gateway.sock`) that a
 * killed executor left behind. The directory may be shared by several executors on one host, so a directory is
 * removed only when nobody serves it: its socket refuses connections (the process that listened is gone), or it
 * has no socket and is older than a job's set-up could take (a job that died before its gateway started).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A directory without a socket younger than this may belong to a job being set up by a live executor. */
export const STALE_UNSERVED_DIR_MS = 5 * 60_000;
const PROBE_TIMEOUT_MS = 1_000;

/** Whether something accepts connections on the Unix socket at `socketPath`. */
export function socketServed(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    const done = (served: boolean) => {
      sock.destroy();
      resolve(served);
    };
    sock.setTimeout(PROBE_TIMEOUT_MS, () => done(true)); // slow but present: assume served
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Removes the stale gateway directories under `socketDir`; returns the names removed. */
export async function removeStaleGatewayDirs(
  socketDir: string,
  opts: { unservedAgeMs?: number; now?: number } = {},
): Promise<string[]> {
  const entries = await fs.readdir(socketDir, { withFileTypes: true }).catch(() => []);
  const now = opts.now ?? Date.now();
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(socketDir, entry.name);
    const sock = path.join(dir, 'gateway.sock');
    const st = await fs.lstat(sock).catch(() => undefined);
    let stale: boolean;
    if (st?.isSocket()) stale = !(await socketServed(sock));
    else {
      const dirStat = await fs.stat(dir).catch(() => undefined);
      stale = dirStat !== undefined && now - dirStat.mtimeMs > (opts.unservedAgeMs ?? STALE_UNSERVED_DIR_MS);
    }
    if (!stale) continue;
    await fs.rm(dir, { recursive: true, force: true });
    removed.push(entry.name);
  }
  return removed;
}
