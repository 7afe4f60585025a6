/**
 * Safe zip handling for code packages, used twice: at upload (POST /functions, nothing written) and at
 * extraction on the executor. A package is hostile until proven otherwise: entries with `..`, absolute
 * paths, symlinks or special files, too many entries and too many inflated bytes are rejected with an
 * error naming the entry. Sizes are counted on the bytes actually inflated, never trusted from headers.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable, type Writable } from 'node:stream';
import yauzl from 'yauzl';
import { ErrorType } from '../../common/errors';

export interface ArchiveLimits {
  /** Files and directories together. */
  maxEntries: number;
  /** Sum of the inflated bytes of every file. */
  maxTotalBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxEntries: 2000, maxTotalBytes: 100 * 1_048_576 };

/** A rejected archive; `entry` names the offending entry when there is one. Its `type` is the registry's. */
export class ArchiveError extends Error {
  readonly type = ErrorType.ArchiveInvalid;
  constructor(
    message: string,
    readonly entry?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ArchiveSummary {
  /** Relative paths of regular files, `/`-separated. */
  files: string[];
  entries: number;
  totalBytes: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/** Validates an entry name and returns its normalised relative path (no trailing slash). */
export function checkEntryName(raw: string): string {
  if (raw.length === 0) throw new ArchiveError('empty entry name', raw);
  if (raw.includes('\0')) throw new ArchiveError(`entry "${raw}" contains a NUL byte`, raw);
  const name = raw.replace(/\\/g, '/');
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name)) {
    throw new ArchiveError(`entry "${raw}" has an absolute path`, raw);
  }
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new ArchiveError(`entry "${raw}" escapes the work dir (..)`, raw);
  if (parts.length === 0) throw new ArchiveError(`entry "${raw}" has no name`, raw);
  return parts.join('/');
}

function entryKind(entry: yauzl.Entry, name: string): 'file' | 'dir' {
  // Unix mode bits live in the high 16 bits of the external attributes when the zip was made on Unix.
  const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
  const isDirName = name.endsWith('/') || name.endsWith('\\');
  if (mode === 0) return isDirName ? 'dir' : 'file';
  if (mode === S_IFDIR) return 'dir';
  if (mode === S_IFREG && !isDirName) return 'file';
  if (mode === 0o120000) throw new ArchiveError(`entry "${name}" is a symbolic link`, name);
  throw new ArchiveError(`entry "${name}" is not a regular file or directory`, name);
}

function openZip(buf: Buffer): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    // decodeStrings: false so names reach our own checks (with our messages) instead of yauzl's.
    yauzl.fromBuffer(buf, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) reject(new ArchiveError(`not a zip archive (${err?.message ?? 'unreadable'})`));
      else resolve(zip);
    });
  });
}

/**
 * Walks every entry, validating it and inflating each file through `sink` (or into nothing), and enforces
 * the limits on the inflated bytes as they stream.
 */
async function walk(
  buf: Buffer,
  limits: ArchiveLimits,
  sink?: (name: string, kind: 'file' | 'dir') => Promise<Writable | undefined>,
): Promise<ArchiveSummary> {
  const zip = await openZip(buf);
  const summary: ArchiveSummary = { files: [], entries: 0, totalBytes: 0 };
  const seen = new Set<string>();
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw new ArchiveError(`too many entries: ${zip.entryCount} > ${limits.maxEntries}`);
    }
    await new Promise<void>((resolve, reject) => {
      zip.on('error', (err: Error) =>
        reject(err instanceof ArchiveError ? err : new ArchiveError(`corrupt zip archive: ${err.message}`)),
      );
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        void (async () => {
          const raw = Buffer.isBuffer(entry.fileName) ? entry.fileName.toString('utf8') : String(entry.fileName);
          summary.entries++;
          if (summary.entries > limits.maxEntries) {
            throw new ArchiveError(`too many entries: more than ${limits.maxEntries}`, raw);
          }
          const kind = entryKind(entry, raw);
          const name = checkEntryName(raw);
          if (seen.has(name)) throw new ArchiveError(`duplicate entry "${raw}"`, raw);
          seen.add(name);
          if (kind === 'dir') {
            await sink?.(name, 'dir');
            zip.readEntry();
            return;
          }
          // Cheap early reject on the declared size; the real check below counts inflated bytes.
          if (summary.totalBytes + entry.uncompressedSize > limits.maxTotalBytes) {
            throw new ArchiveError(
              `entry "${raw}" exceeds the archive size limit of ${limits.maxTotalBytes} bytes`,
              raw,
            );
          }
          const stream = await new Promise<Readable>((res, rej) =>
            zip.openReadStream(entry, (err, s) =>
              err || !s ? rej(new ArchiveError(`entry "${raw}": ${err?.message}`, raw)) : res(s),
            ),
          );
          const counter = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              summary.totalBytes += chunk.length;
              if (summary.totalBytes > limits.maxTotalBytes) {
                cb(
                  new ArchiveError(
                    `entry "${raw}" exceeds the archive size limit of ${limits.maxTotalBytes} bytes`,
                    raw,
                  ),
                );
              } else cb(null, chunk);
            },
          });
          // yauzl can emit a late second error on its stream after pipeline() has settled; the first one counts.
          stream.on('error', () => undefined);
          try {
            const target = sink ? await sink(name, 'file') : undefined;
            await pipeline(
              stream,
              counter,
              target ??
                (async (src: AsyncIterable<Buffer>) => {
                  for await (const _chunk of src) void _chunk;
                }),
            );
          } catch (err) {
            throw err instanceof ArchiveError
              ? err
              : new ArchiveError(`entry "${raw}": ${(err as Error).message}`, raw);
          }
          summary.files.push(name);
          zip.readEntry();
        })().catch(reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return summary;
}

/** Validates an archive without writing anything (upload-time check). */
export async function inspectZip(buf: Buffer, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<ArchiveSummary> {
  return walk(buf, limits);
}

/**
 * Extracts into `destDir` (created if missing). Every target is resolved and checked to stay inside
 * `destDir`; files are created exclusively (`wx`), so nothing existing is followed or overwritten.
 * Files are made world-readable so the container's non-root user can read them.
 */
export async function extractZip(
  buf: Buffer,
  destDir: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ArchiveSummary> {
  const root = path.resolve(destDir);
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  const inside = (name: string) => {
    const target = path.resolve(root, name);
    if (!target.startsWith(root + path.sep)) throw new ArchiveError(`entry "${name}" escapes the work dir`, name);
    return target;
  };
  return walk(buf, limits, async (name, kind) => {
    const target = inside(name);
    if (kind === 'dir') {
      await fs.mkdir(target, { recursive: true, mode: 0o755 });
      return undefined;
    }
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    return createWriteStream(target, { flags: 'wx', mode: 0o644 });
  });
}
