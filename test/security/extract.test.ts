/**
 * Attacks through the code package (a zip the tenant controls), on the real extractor writing to a real
 * directory. Each asserts the harm did not happen: nothing written outside the work dir, no directory or
 * file flood on the host, a cancel stops the work, progress is reported while it runs.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yazl from 'yazl';
import { ArchiveAborted, ArchiveError, DEFAULT_ARCHIVE_LIMITS, extractZip, inspectZip } from '../../lib/zip/extract';
import { EXTRACT_UID, extractZipIsolated } from '../../lib/zip/extract-isolated';
import { buildZip } from '../fixtures/jobs/zips';

jest.setTimeout(60_000);

/** A zip of `n` entries made by `entry(i)`, streamed by yazl (names of any depth, no data or a buffer). */
async function zipOf(n: number, entry: (i: number) => { name: string; data?: Buffer; dir?: boolean }, compress = true) {
  const zip = new yazl.ZipFile();
  for (let i = 0; i < n; i++) {
    const e = entry(i);
    if (e.dir) zip.addEmptyDirectory(e.name);
    // Stored (not deflated) entries keep a 100k-entry archive cheap to build: yazl deflates entries in parallel.
    else zip.addBuffer(e.data ?? Buffer.alloc(0), e.name, { compress });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * A zip of `n` empty stored files (`f0`, `f1`, …) with ZIP64 end records, written directly: yazl takes minutes
 * for 100k entries.
 */
function manyEntriesZip(n: number): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const name = Buffer.from(`f${i}`);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name);
    centrals.push(central, name);
    offset += 30 + name.length;
  }
  const cd = Buffer.concat(centrals);
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(45, 12);
  z64.writeUInt16LE(45, 14);
  z64.writeBigUInt64LE(BigInt(n), 24);
  z64.writeBigUInt64LE(BigInt(n), 32);
  z64.writeBigUInt64LE(BigInt(cd.length), 40);
  z64.writeBigUInt64LE(BigInt(offset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
  locator.writeUInt32LE(1, 16);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(0xffffffff, 12);
  eocd.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([...locals, cd, z64, locator, eocd]);
}

/** Everything below `dir`: entries (files and dirs) and how deep they go. */
function census(dir: string): { entries: number; depth: number } {
  let entries = 0;
  let depth = 0;
  const walk = (d: string, level: number) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      entries++;
      depth = Math.max(depth, level);
      if (e.isDirectory()) walk(path.join(d, e.name), level + 1);
    }
  };
  if (existsSync(dir)) walk(dir, 1);
  return { entries, depth };
}

describe('attacks through the code package', () => {
  let base: string;
  let dest: string;
  beforeEach(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'ainode-sec-extract-'));
    dest = path.join(base, 'work');
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));
  const outside = () => readdirSync(base).filter((n) => n !== 'work');

  it('directory bomb by depth: a 400-level a/a/a/… path is refused before any directory is made', async () => {
    const deep = `${Array.from({ length: 400 }, () => 'a').join('/')}/x.py`;
    const zip = await zipOf(1, () => ({ name: deep, data: Buffer.from('x') }));
    await expect(extractZip(zip, dest)).rejects.toThrow(/nested deeper than 32 levels/);
    expect(census(dest)).toEqual({ entries: 0, depth: 0 });
    await expect(inspectZip(zip)).rejects.toBeInstanceOf(ArchiveError);
  });

  it('directory bomb by count: 1999 directory entries stop at the directory limit, never 1999 directories', async () => {
    const zip = await zipOf(1999, (i) => ({ name: `d${i}/`, dir: true }));
    await expect(extractZip(zip, dest)).rejects.toThrow(/too many directories: more than 500/);
    expect(census(dest).entries).toBeLessThanOrEqual(DEFAULT_ARCHIVE_LIMITS.maxDirs);
  });

  it('directory bomb by implied parents: files at distinct 30-deep paths count every parent they need', async () => {
    const zip = await zipOf(100, (i) => ({
      name: `${Array.from({ length: 30 }, (_, k) => `p${i}_${k}`).join('/')}/f.py`,
      data: Buffer.from('x'),
    }));
    await expect(extractZip(zip, dest)).rejects.toThrow(/too many directories/);
    const seen = census(dest);
    // Directories plus at most one file per finished path: bounded by the limit, not by 100 × 30.
    expect(seen.entries).toBeLessThanOrEqual(DEFAULT_ARCHIVE_LIMITS.maxDirs + 20);
  });

  it('name length: a 300-byte file name and a 2000-byte path are refused', async () => {
    const longName = await zipOf(1, () => ({ name: `${'n'.repeat(300)}.py`, data: Buffer.from('x') }));
    await expect(extractZip(longName, dest)).rejects.toThrow(/has a name over 255 bytes/);
    const longPath = await zipOf(1, () => ({
      name: `${Array.from({ length: 20 }, () => 'd'.repeat(100)).join('/')}/x.py`,
      data: Buffer.from('x'),
    }));
    await expect(extractZip(longPath, dest)).rejects.toThrow(/has a path over 1024 bytes/);
    expect(census(dest).entries).toBe(0);
  });

  it('zip bomb by ratio: 50 MB of zeros in a ~50 KB zip stops early, writing little to the host', async () => {
    const zip = await zipOf(1, () => ({ name: 'bomb.bin', data: Buffer.alloc(50 * 1_048_576) }));
    expect(zip.length).toBeLessThan(1_048_576);
    const before = statfsSync(base);
    await expect(extractZip(zip, dest)).rejects.toThrow(/inflates more than 200 times its compressed size/);
    const after = statfsSync(base);
    // At most the ratio's worth was written (a few MB), never the 50 MB the entry claims.
    const written = existsSync(path.join(dest, 'bomb.bin')) ? census(dest).entries : 0;
    expect(written).toBeLessThanOrEqual(1);
    expect((before.bavail - after.bavail) * after.bsize).toBeLessThan(40 * 1_048_576);
  });

  it('zip bomb by total: files that each compress modestly still stop at the total size', async () => {
    // Pseudo-random bytes compress ~1:1, so only the total limit can catch these.
    const chunk = Buffer.alloc(1_048_576);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
    const zip = await zipOf(12, (i) => ({ name: `part${i}.bin`, data: chunk }));
    await expect(extractZip(zip, dest, { ...DEFAULT_ARCHIVE_LIMITS, maxTotalBytes: 8 * 1_048_576 })).rejects.toThrow(
      /exceeds the archive size limit of 8388608 bytes/,
    );
    expect(census(dest).entries).toBeLessThanOrEqual(9);
  });

  it('100k entries: refused from the central directory before a single entry is written', async () => {
    // The same builder makes a small archive that does extract: the archive is well-formed, only too big.
    expect((await extractZip(manyEntriesZip(3), path.join(base, 'small'))).files).toEqual(['f0', 'f1', 'f2']);
    const zip = manyEntriesZip(100_000);
    let progress = 0;
    await expect(extractZip(zip, dest, DEFAULT_ARCHIVE_LIMITS, { onProgress: () => progress++ })).rejects.toThrow(
      /too many entries: 100000 > 2000/,
    );
    expect(census(dest).entries).toBe(0);
    expect(progress).toBe(0);
  });

  it('a symlink to the host /etc, then an entry written through it: refused, /etc untouched', async () => {
    const target = `/etc/ainode-pwned-${process.pid}`;
    const zip = await buildZip([
      { name: 'etc', data: '/etc', mode: 0o120777 },
      { name: `etc/ainode-pwned-${process.pid}`, data: 'pwned' },
    ]);
    await expect(extractZip(zip, dest)).rejects.toThrow(/is a symbolic link/);
    expect(existsSync(target)).toBe(false);
    expect(outside()).toEqual([]);
    // The same pair with the link made by a directory entry first: the file lands inside the work dir only.
    const zip2 = await buildZip([
      { name: 'etc/', dir: true },
      { name: `etc/ainode-pwned-${process.pid}`, data: 'x' },
    ]);
    await extractZip(zip2, dest);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(path.join(dest, 'etc', `ainode-pwned-${process.pid}`))).toBe(true);
  });

  it.each([
    ['a character device', 0o020666],
    ['a block device', 0o060666],
    ['a fifo', 0o010666],
    ['a socket', 0o140666],
  ])('%s entry is refused and nothing is created', async (_what, mode) => {
    const zip = await buildZip([{ name: 'dev', data: '', mode }]);
    await expect(extractZip(zip, dest)).rejects.toThrow(/is not a regular file or directory/);
    expect(census(dest).entries).toBe(0);
  });

  it('a "hard link" (two entries of one name, the second meant to overwrite the first): refused', async () => {
    const zip = await buildZip([
      { name: 'a.py', data: 'ok' },
      { name: 'b.py', data: 'x' },
    ]);
    // Rename b.py to a.py in place: the archive now holds two entries with one name.
    const evil = Buffer.from(zip.toString('latin1').replace(/b\.py/g, 'a.py'), 'latin1');
    await expect(extractZip(evil, dest)).rejects.toThrow(/duplicate entry "a\.py"/);
  });

  it('extraction heartbeats while it runs and stops at a cancel', async () => {
    const zip = await zipOf(1500, (i) => ({ name: `f${i}.bin`, data: Buffer.alloc(30_000, i % 251) }));
    const ctrl = new AbortController();
    const beats: number[] = [];
    const err = await extractZip(zip, dest, DEFAULT_ARCHIVE_LIMITS, {
      signal: ctrl.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        beats.push(p.entries);
        if (p.entries >= 100) ctrl.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveAborted);
    expect(beats.length).toBeGreaterThan(10);
    // Stopped at the cancel: far fewer than the 1500 files were written.
    expect(census(dest).entries).toBeLessThan(200);
  });

  describe('without root', () => {
    const root = process.getuid?.() === 0;

    it('the executor (root) extracts in a child process whose uid owns the files, not root', async () => {
      chmodSync(base, 0o755);
      const zip = await buildZip([
        { name: 'main.py', data: 'print(1)' },
        { name: 'lib/', dir: true },
        { name: 'lib/u.py', data: 'x' },
      ]);
      const beats: number[] = [];
      const summary = await extractZipIsolated(zip, dest, DEFAULT_ARCHIVE_LIMITS, {
        scratchDir: base,
        progressIntervalMs: 0,
        onProgress: (p) => beats.push(p.entries),
      });
      expect(summary.files.sort()).toEqual(['lib/u.py', 'main.py']);
      const owner = statSync(path.join(dest, 'lib', 'u.py')).uid;
      expect(owner).toBe(root ? EXTRACT_UID : process.getuid?.());
      if (root) expect(owner).not.toBe(0);
      // The package copy the child read is gone; nothing else was written beside the work dir.
      expect(outside()).toEqual([]);
    });

    it('a hostile archive is refused by the child with the same messages, and a cancel kills it', async () => {
      chmodSync(base, 0o755);
      const deep = await zipOf(1, () => ({ name: `${'a/'.repeat(40)}x.py`, data: Buffer.from('x') }));
      await expect(extractZipIsolated(deep, dest, DEFAULT_ARCHIVE_LIMITS, { scratchDir: base })).rejects.toThrow(
        /nested deeper than 32 levels/,
      );
      const big = await zipOf(1500, (i) => ({ name: `f${i}.bin`, data: Buffer.alloc(30_000, i % 251) }));
      const ctrl = new AbortController();
      const run = extractZipIsolated(big, path.join(base, 'work2'), DEFAULT_ARCHIVE_LIMITS, {
        scratchDir: base,
        signal: ctrl.signal,
        onProgress: () => ctrl.abort(),
      });
      await expect(run).rejects.toBeInstanceOf(ArchiveAborted);
    });
  });
});
