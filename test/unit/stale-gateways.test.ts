/**
 * Executor start-up cleanup of gateway socket dirs (lib/executor/stale-gateways.ts) with real Unix sockets: the
 * dir of a gateway whose process was killed with SIGKILL (its socket file remains, and refuses connections) is
 * removed; a dir whose gateway still listens is kept (another executor on the host); a dir without a socket is
 * removed only once it is older than a job's set-up.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { removeStaleGatewayDirs, socketServed, STALE_UNSERVED_DIR_MS } from '../../lib/executor/stale-gateways';

const root = mkdtempSync(path.join(tmpdir(), 'ainode-gw-'));
const live = net.createServer();
afterAll(async () => {
  await new Promise<void>((resolve) => live.close(() => resolve()));
  rmSync(root, { recursive: true, force: true });
});

/** A gateway socket served by a child process that is then killed with SIGKILL (the socket file stays). */
async function killedGateway(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'gateway.sock');
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  return sock;
}

describe('removeStaleGatewayDirs', () => {
  it('removes the dirs of killed gateways and old unserved dirs; keeps live gateways and young dirs', async () => {
    const dead = await killedGateway(path.join(root, 'job-dead.1'));
    expect(existsSync(dead)).toBe(true);
    expect(await socketServed(dead)).toBe(false);

    mkdirSync(path.join(root, 'job-live.1'));
    const liveSock = path.join(root, 'job-live.1', 'gateway.sock');
    await new Promise<void>((resolve) => live.listen(liveSock, () => resolve()));
    expect(await socketServed(liveSock)).toBe(true);

    mkdirSync(path.join(root, 'job-setting-up.1'));

    // Now: the dead gateway's dir goes; the young dir without a socket may be a job being set up: it stays.
    expect(await removeStaleGatewayDirs(root)).toEqual(['job-dead.1']);
    expect(existsSync(path.join(root, 'job-dead.1'))).toBe(false);
    expect(existsSync(liveSock)).toBe(true);
    expect(existsSync(path.join(root, 'job-setting-up.1'))).toBe(true);

    // Later than a set-up could take: the unserved dir goes too; the live gateway never does.
    const later = Date.now() + STALE_UNSERVED_DIR_MS + 1000;
    expect(await removeStaleGatewayDirs(root, { now: later })).toEqual(['job-setting-up.1']);
    expect(existsSync(liveSock)).toBe(true);
  });

  it('a missing socket dir is nothing to clean', async () => {
    expect(await removeStaleGatewayDirs(path.join(root, 'does-not-exist'))).toEqual([]);
  });
});
