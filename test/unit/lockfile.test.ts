/**
 * `npm ci` must accept the committed lockfile on any machine: it refuses one that lacks an optional platform
 * package (e.g. @swc/core-darwin-arm64) named by a dependency, which a registry holding only some platforms'
 * builds leaves out. scripts/fill-lockfile.mjs adds them; this checks none is missing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'fill-lockfile.mjs');

function check(dir: string): { code: number; stderr: string } {
  try {
    execFileSync(process.execPath, [path.join(dir, 'scripts', 'fill-lockfile.mjs'), '--check'], { stdio: 'pipe' });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stderr: Buffer };
    return { code: e.status, stderr: e.stderr.toString() };
  }
}

function copyOf(lock: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lock-'));
  mkdirSync(path.join(dir, 'scripts'));
  copyFileSync(SCRIPT, path.join(dir, 'scripts', 'fill-lockfile.mjs'));
  writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify(lock));
  return dir;
}

describe('package-lock.json', () => {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { optionalDependencies?: Record<string, string>; os?: string[]; cpu?: string[] }>;
  };

  it('lists every optional platform package its dependencies name (npm ci accepts it anywhere)', () => {
    expect(check(ROOT)).toEqual({ code: 0, stderr: '' });
    expect(lock.packages['node_modules/@swc/core-darwin-arm64']).toMatchObject({ os: ['darwin'], cpu: ['arm64'] });
  });

  it('the check fails on a lockfile with one left out, and the fix puts it back', () => {
    const broken = structuredClone(lock);
    delete broken.packages['node_modules/@swc/core-win32-x64-msvc'];
    const dir = copyOf(broken);
    const res = check(dir);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/lacks 1 optional platform packages \(@swc\/core-win32-x64-msvc/);
    execFileSync(process.execPath, [path.join(dir, 'scripts', 'fill-lockfile.mjs')], { stdio: 'pipe' });
    expect(check(dir).code).toBe(0);
    const fixed = JSON.parse(readFileSync(path.join(dir, 'package-lock.json'), 'utf8')) as typeof lock;
    expect(fixed.packages['node_modules/@swc/core-win32-x64-msvc']).toMatchObject({
      os: ['win32'],
      cpu: ['x64'],
      optional: true,
    });
  });
});
