#!/usr/bin/env node
/**
 * Makes package-lock.json installable with `npm ci` on every platform, when it was written against a registry
 * that holds only some platforms' prebuilt binaries (@swc/core-*, @unrs/resolver-binding-*: optional
 * dependencies, one package per os/cpu). `npm install` then leaves the missing ones out of the lockfile and
 * `npm ci` refuses it ("Missing: @swc/core-darwin-arm64 from lock file"). This adds an entry for each missing
 * optional dependency: its version, `optional: true`, and the os/cpu/libc read from its name, so npm skips it
 * on other platforms and fetches it by name and version (the lockfile keeps no URLs) on its own.
 *
 *   node scripts/fill-lockfile.mjs          fix package-lock.json in place (run after `npm install`)
 *   node scripts/fill-lockfile.mjs --check  exit 1 when an entry is missing (the unit suite runs this)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = path.join(root, 'package-lock.json');

/** os, cpu and libc of a platform package from its name, e.g. `core-linux-arm64-musl`. */
export function platformOf(name) {
  const osNames = [
    'darwin',
    'linux',
    'win32',
    'freebsd',
    'android',
    'openharmony',
    'netbsd',
    'openbsd',
    'sunos',
    'aix',
  ];
  const cpus = ['arm64', 'x64', 'ia32', 'arm', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el', 'wasm32'];
  const parts = name.split('/').pop().split('-');
  const os = parts.find((p) => osNames.includes(p));
  const cpu = parts.find((p) => cpus.includes(p));
  if (!os || !cpu) return undefined;
  const out = { os: [os], cpu: [cpu] };
  if (os === 'linux' && parts.includes('musl')) out.libc = ['musl'];
  else if (os === 'linux' && parts.some((p) => p.startsWith('gnu'))) out.libc = ['glibc'];
  return out;
}

/** Missing optional-dependency entries of `lock`: [{ key, name, version }]. */
export function missingOptional(lock) {
  const missing = [];
  for (const [key, pkg] of Object.entries(lock.packages ?? {})) {
    for (const [name, version] of Object.entries(pkg.optionalDependencies ?? {})) {
      // npm resolves a dependency next to its dependent first, then in the top-level node_modules.
      const nested = `${key ? `${key}/` : ''}node_modules/${name}`;
      if (lock.packages[nested] || lock.packages[`node_modules/${name}`]) continue;
      if (!platformOf(name)) continue;
      missing.push({ key: `node_modules/${name}`, name, version: version.replace(/^[\^~=]/, '') });
    }
  }
  return missing;
}

function main() {
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const missing = missingOptional(lock);
  if (process.argv.includes('--check')) {
    if (missing.length) {
      console.error(
        `package-lock.json lacks ${missing.length} optional platform packages (${missing[0].name}, ...): run node scripts/fill-lockfile.mjs`,
      );
      process.exit(1);
    }
    return;
  }
  for (const m of missing) {
    const { os, cpu, libc } = platformOf(m.name);
    lock.packages[m.key] = { version: m.version, cpu, ...(libc ? { libc } : {}), optional: true, os };
  }
  // Keep npm's key order (sorted) so a later `npm install` produces a small diff.
  const sorted = Object.fromEntries(
    Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
  );
  lock.packages = sorted;
  writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
  console.log(`package-lock.json: added ${missing.length} optional platform entries`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
