/**
 * The dev supervisor's restart logic (scripts/lib/supervise.ts) on real child processes: a worker killed with
 * SIGKILL is started again and the supervisor says so; one that exits at once, again and again, is reported as a
 * crash loop with the last lines of its log; stopping cancels a pending restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lastLines, restartDelayMs, SupervisedProcess } from '../../scripts/lib/supervise';

const dir = mkdtempSync(path.join(tmpdir(), 'ainode-supervise-'));
const started: ChildProcess[] = [];
afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A node child whose stdout/stderr go to `logFile` (as spawnTs does). */
function nodeChild(script: string, logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', fd, fd] });
  started.push(proc);
  return proc;
}

const until = async (what: string, check: () => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const FAST = { initialDelayMs: 10, maxDelayMs: 40, healthyAfterMs: 60_000, crashLoopWindowMs: 60_000 };

describe('restartDelayMs', () => {
  it('doubles from the initial delay and stops at the maximum', () => {
    const policy = { initialDelayMs: 1000, maxDelayMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => restartDelayMs(n, policy))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });
});

describe('lastLines', () => {
  it('returns the last n lines of a file, and none for a missing file', () => {
    const file = path.join(dir, 'lines.log');
    writeFileSync(file, Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    expect(lastLines(file, 3)).toEqual(['line 48', 'line 49', 'line 50']);
    expect(lastLines(path.join(dir, 'missing.log'), 3)).toEqual([]);
  });
});

describe('SupervisedProcess', () => {
  it('restarts a worker killed with SIGKILL and says so', async () => {
    const logFile = path.join(dir, 'killed.log');
    const said: string[] = [];
    const warned: string[] = [];
    const sup = new SupervisedProcess({
      name: 'orchestrator',
      start: () => nodeChild('console.log("up"); setInterval(() => {}, 1000)', logFile),
      logFile,
      policy: FAST,
      say: (m) => said.push(m),
      warn: (m) => warned.push(m),
    });
    const first = sup.proc;
    first.kill('SIGKILL');
    await until('the restart', () => sup.restarts === 1 && sup.running);
    expect(sup.proc.pid).not.toBe(first.pid);
    expect(warned[0]).toMatch(/^orchestrator exited \(SIGKILL\); restarting it in 10 ms \(restart 1\)$/);
    expect(said).toEqual([`orchestrator restarted (pid ${sup.proc.pid}, restart 1)`]);
    expect(sup.crashLoops).toBe(0);
    sup.stopRestarting();
    sup.proc.kill('SIGKILL');
  });

  it('reports a crash loop once, with the last lines of the log, and keeps restarting at the longest delay', async () => {
    const logFile = path.join(dir, 'loop.log');
    const warned: string[] = [];
    const sup = new SupervisedProcess({
      name: 'executor',
      start: () => nodeChild('console.error("Error: cannot reach the Docker engine"); process.exit(3)', logFile),
      logFile,
      policy: { ...FAST, crashLoopCount: 3, logLines: 2 },
      say: () => {},
      warn: (m) => warned.push(m),
    });
    await until('five restarts', () => sup.restarts >= 5);
    sup.stopRestarting();
    expect(sup.crashLoops).toBe(1);
    const report = warned.find((m) => m.includes('crashing in a loop'))!;
    expect(report).toContain('executor is crashing in a loop (3 exits');
    expect(report).toContain('last: code 3');
    expect(report).toContain(`its last 2 log lines (${logFile})`);
    expect(report).toContain('    Error: cannot reach the Docker engine');
    // Before the loop: doubling delays; in it: the longest.
    const delays = warned.filter((m) => m.includes('restarting it in')).map((m) => /in (\d+) ms/.exec(m)?.[1]);
    expect(delays.slice(0, 4)).toEqual(['10', '20', '40', '40']);
  });

  it('stops restarting when asked, also while a restart is pending', async () => {
    const logFile = path.join(dir, 'stopped.log');
    let starts = 0;
    const sup = new SupervisedProcess({
      name: 'api',
      start: () => {
        starts++;
        return nodeChild('process.exit(1)', logFile);
      },
      logFile,
      policy: { ...FAST, initialDelayMs: 300 },
      say: () => {},
      warn: () => {},
    });
    await until('the exit', () => !sup.running);
    sup.stopRestarting();
    await new Promise((r) => setTimeout(r, 600));
    expect(starts).toBe(1);
    expect(sup.restarts).toBe(0);
  });
});
