import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArchiveError, checkEntryName, extractZip, inspectZip } from '../../lib/zip/extract';
import { buildZip } from '../fixtures/jobs/zips';

describe('safe zip extraction', () => {
  let base: string;
  let dest: string;
  beforeEach(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'ainode-extract-'));
    dest = path.join(base, 'work');
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  /** Everything under `base` except the work dir: must stay empty whatever the archive says. */
  const outsideWorkDir = () => readdirSync(base).filter((n) => n !== 'work');

  it('extracts nested files and reports what it wrote', async () => {
    const zip = await buildZip([
      { name: 'main.py', data: 'print(1)\n' },
      { name: 'lib/', dir: true },
      { name: 'lib/util.py', data: 'X = 2\n' },
    ]);
    const summary = await extractZip(zip, dest);
    expect(summary.files.sort()).toEqual(['lib/util.py', 'main.py']);
    expect(summary.totalBytes).toBe(15);
    expect(readFileSync(path.join(dest, 'lib/util.py'), 'utf8')).toBe('X = 2\n');
    expect((await inspectZip(zip)).files).toHaveLength(2);
  });

  it('rejects ../ entries, naming the entry, and writes nothing outside', async () => {
    const zip = await buildZip([{ name: 'xx/evil.txt', data: 'pwned' }], { 'xx/evil.txt': '../evil.txt' });
    await expect(extractZip(zip, dest)).rejects.toThrow(/"\.\.\/evil\.txt" escapes the work dir/);
    await expect(inspectZip(zip)).rejects.toBeInstanceOf(ArchiveError);
    expect(outsideWorkDir()).toEqual([]);
    expect(existsSync(path.join(base, 'evil.txt'))).toBe(false);
  });

  it('rejects absolute paths', async () => {
    const target = path.join(base, 'abs.txt');
    const fake = 'x'.repeat(target.length);
    const zip = await buildZip([{ name: fake, data: 'pwned' }], { [fake]: target });
    await expect(extractZip(zip, dest)).rejects.toThrow(/has an absolute path/);
    expect(existsSync(target)).toBe(false);
  });

  it('rejects symlink entries', async () => {
    const zip = await buildZip([{ name: 'link', data: '/etc/passwd', mode: 0o120777 }]);
    const err = await extractZip(zip, dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).entry).toBe('link');
    expect((err as Error).message).toMatch(/symbolic link/);
  });

  it('rejects a zip bomb by counting inflated bytes', async () => {
    const zip = await buildZip([{ name: 'bomb.bin', data: Buffer.alloc(8 * 1_048_576) }]);
    expect(zip.length).toBeLessThan(100_000);
    await expect(extractZip(zip, dest, { maxEntries: 10, maxTotalBytes: 1_048_576 })).rejects.toThrow(
      /"bomb\.bin" exceeds the archive size limit/,
    );
  });

  it('counts real bytes even when the header lies about the size', async () => {
    const data = Buffer.alloc(2 * 1_048_576, 0x61);
    const zip = await buildZip([{ name: 'liar.bin', data }]);
    // Patch the declared uncompressed size (local header offset 22, central directory offset 24) to 10.
    zip.writeUInt32LE(10, 22);
    const cd = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    zip.writeUInt32LE(10, cd + 24);
    await expect(extractZip(zip, dest, { maxEntries: 10, maxTotalBytes: 1_048_576 })).rejects.toThrow(ArchiveError);
  });

  it('rejects too many entries', async () => {
    const zip = await buildZip(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}.txt`, data: 'x' })));
    await expect(inspectZip(zip, { maxEntries: 10, maxTotalBytes: 1000 })).rejects.toThrow(/too many entries/);
  });

  it('rejects what is not a zip at all', async () => {
    await expect(inspectZip(Buffer.from('print("hello")\n'))).rejects.toThrow(/not a zip archive/);
  });

  it('normalises and checks entry names', () => {
    expect(checkEntryName('./a//b.py')).toBe('a/b.py');
    expect(() => checkEntryName('a/../../b')).toThrow(/escapes/);
    expect(() => checkEntryName('C:/win')).toThrow(/absolute/);
    expect(() => checkEntryName('..\\win')).toThrow(/escapes/);
  });
});
