/**
 * docker-compose.yml checked by the real Compose v2 CLI (`docker compose config`), built by scripts/setup
 * (scripts/lib/install-compose.sh: v2.28.1 with `go install`; Debian's docker-compose 1.29 rejects the top-level
 * `name:`). test/unit/compose.test.ts checks the wiring; this checks that the tool accepts the file at all and
 * resolves it as we read it. A file the tool rejects must fail here, so one broken copy is checked too.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { readToolchain, ROOT } from '../../scripts/lib/toolchain';

const execFileAsync = promisify(execFile);
const compose = path.join(readToolchain().cache, 'bin', 'docker-compose');
// No variables from this shell: every `${VAR:-default}` resolves to the file's own default.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir() };

async function config(file: string, cwd: string) {
  return execFileAsync(compose, ['-f', file, 'config', '--format', 'json'], { cwd, env, timeout: 60_000 });
}

interface Resolved {
  name: string;
  services: Record<
    string,
    { image?: string; environment?: Record<string, string>; volumes?: { source: string; target: string }[] }
  >;
}

describe('docker compose config (Compose v2 CLI)', () => {
  it('accepts docker-compose.yml and resolves every service, with a pinned image tag each', async () => {
    const { stdout } = await config(path.join(ROOT, 'docker-compose.yml'), ROOT);
    const resolved = JSON.parse(stdout) as Resolved;
    expect(resolved.name).toBe('ainode');
    const ours = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, unknown>;
    };
    expect(Object.keys(resolved.services).sort()).toEqual(Object.keys(ours.services).sort());
    const untagged = Object.entries(resolved.services)
      .filter(([, s]) => !/^[\w./-]+:[\w.-]+$/.test(s.image ?? ''))
      .map(([name, s]) => `${name}: ${s.image}`);
    expect(untagged).toEqual([]);
    // Never `latest` for images we pull (ours, ainode/*, are built here).
    const floating = Object.entries(resolved.services)
      .filter(([, s]) => !s.image!.startsWith('ainode/') && s.image!.endsWith(':latest'))
      .map(([name]) => name);
    expect(floating).toEqual([]);
    // The executor hands jobs host paths only: the socket dir and the work root (where it also copies the SDK).
    const executor = resolved.services.executor!;
    const targets = (executor.volumes ?? []).map((v) => `${v.source}:${v.target}`);
    expect(targets).toContain('/tmp/ainode-jobs:/tmp/ainode-jobs');
    expect(executor.environment?.EXECUTOR_ID).toBeTruthy();
  });

  it('rejects a copy with a misspelt service key (the tool really validates)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'compose-bad-'));
    try {
      const broken = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8').replace(
        /\n {2}moto:\n {4}image:/,
        '\n  moto:\n    imagee:',
      );
      expect(broken).toContain('imagee:');
      writeFileSync(path.join(dir, 'docker-compose.yml'), broken);
      await expect(config(path.join(dir, 'docker-compose.yml'), dir)).rejects.toMatchObject({
        stderr: expect.stringMatching(/imagee/),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
