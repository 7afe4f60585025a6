/**
 * The executor's own directories (per-job work dirs, gateway sockets). Their defaults sit under `/tmp`, where
 * any local user may create a path first and then read a job's token or swap a directory for a symlink. So
 * the executor only uses a directory it owns, that is no symlink, that only it can write, and whose every
 * ancestor is owned by it or root and writable by others only when sticky (like `/tmp` itself).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class UnsafeDirError extends Error {
  constructor(dir: string, why: string) {
    super(`refusing to use ${dir}: ${why}`);
    this.name = 'UnsafeDirError';
  }
}

/** Creates `dir` if missing (mode 0711: others may only pass through) and checks it is private; throws if not. */
export async function ensurePrivateDir(dir: string, mode = 0o711): Promise<void> {
  const abs = path.resolve(dir);
  await fs.mkdir(abs, { recursive: true, mode });
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const own = await fs.lstat(abs);
  if (own.isSymbolicLink()) throw new UnsafeDirError(abs, 'it is a symbolic link');
  if (!own.isDirectory()) throw new UnsafeDirError(abs, 'it is not a directory');
  if (uid >= 0 && own.uid !== uid) throw new UnsafeDirError(abs, `it belongs to uid ${own.uid}, not to this process`);
  await fs.chmod(abs, mode);
  // Ancestors, through any symlinks in them (e.g. /var/run -> /run): nobody else may rename what is below.
  let p = path.dirname(await fs.realpath(abs));
  for (;;) {
    const st = await fs.stat(p);
    if (uid >= 0 && st.uid !== uid && st.uid !== 0) {
      throw new UnsafeDirError(abs, `its parent ${p} belongs to uid ${st.uid}`);
    }
    const othersWrite = (st.mode & 0o022) !== 0;
    const sticky = (st.mode & 0o1000) !== 0;
    if (othersWrite && !sticky) throw new UnsafeDirError(abs, `its parent ${p} is writable by others`);
    const up = path.dirname(p);
    if (up === p) break;
    p = up;
  }
}

/** Unmounts every mount below `root` (deepest first): quota tmpfs a previous life of the executor left. */
export async function unmountUnder(root: string): Promise<string[]> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return [];
  const prefix = path.resolve(root) + path.sep;
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const points = mounts
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await run('umount', ['-l', p], { timeout: 10_000 }).catch(() => undefined);
  return points;
}
