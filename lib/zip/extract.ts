/**
 * Safe zip handling for code packages, used twice: at upload (POST /functions, nothing written) and at
 * extraction on the executor. A package is hostile until proven otherwise: entries with `..`, absolute
 * paths, symlinks or special files, too many entries, directories, path components or bytes in a name,
 * too many inflated bytes in all or per compressed byte are rejected with an error naming the entry. Sizes
 * are counted on the bytes actually inflated, never trusted from headers. Extraction reports progress (for
 * heartbeats) and stops at an abort signal between entries and between chunks.
 */
import { createWriteStream, promises as fs, type WriteStream } from 'node:fs';
import { once } from 'node:events';
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
  /** Directories made, explicit entries and the parents of files together (a directory bomb). */
  maxDirs?: number;
  /** Path components of one entry. */
  maxDepth?: number;
  /** Bytes of one path component (the common filesystem limit is 255). */
  maxComponentBytes?: number;
  /** Bytes of one entry's whole path. */
  maxPathBytes?: number;
  /** Inflated bytes per compressed byte of an entry, checked once it has inflated more than RATIO_FLOOR_BYTES. */
  maxRatio?: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Required<ArchiveLimits> = {
  maxEntries: 2000,
  maxTotalBytes: 100 * 1_048_576,
  maxDirs: 500,
  maxDepth: 32,
  maxComponentBytes: 255,
  maxPathBytes: 1024,
  maxRatio: 200,
};
/** Small files may compress at any ratio harmlessly; the ratio limit applies past this many inflated bytes. */
export const RATIO_FLOOR_BYTES = 1_048_576;

export interface ExtractHooks {
  /** Stops extraction with an ArchiveAborted error (activity cancellation). */
  signal?: AbortSignal;
  /** Called at most every `progressIntervalMs` while entries are read (activity heartbeats). */
  onProgress?: (p: { entries: number; totalBytes: number }) => void;
  progressIntervalMs?: number;
}

/** Extraction stopped by its abort signal (not the archive's fault). */
export class ArchiveAborted extends Error {
  constructor() {
    super('extraction aborted');
    this.name = 'ArchiveAborted';
  }
}

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
  given: ArchiveLimits,
  sink?: (name: string, kind: 'file' | 'dir') => Promise<Writable | undefined>,
  hooks: ExtractHooks = {},
): Promise<ArchiveSummary> {
  const limits: Required<ArchiveLimits> = { ...DEFAULT_ARCHIVE_LIMITS, ...given };
  const zip = await openZip(buf);
  const summary: ArchiveSummary = { files: [], entries: 0, totalBytes: 0 };
  const seen = new Set<string>();
  const dirs = new Set<string>();
  let lastProgress = 0;
  const tick = () => {
    if (hooks.signal?.aborted) throw new ArchiveAborted();
    const now = Date.now();
    if (hooks.onProgress && now - lastProgress >= (hooks.progressIntervalMs ?? 500)) {
      lastProgress = now;
      hooks.onProgress({ entries: summary.entries, totalBytes: summary.totalBytes });
    }
  };
  /** Depth, name lengths and the directories this entry makes (itself if a dir, and every parent). */
  const checkShape = (name: string, raw: string, kind: 'file' | 'dir') => {
    if (Buffer.byteLength(name) > limits.maxPathBytes) {
      throw new ArchiveError(`entry "${raw.slice(0, 80)}…" has a path over ${limits.maxPathBytes} bytes`, raw);
    }
    const parts = name.split('/');
    if (parts.length > limits.maxDepth) {
      throw new ArchiveError(`entry "${raw.slice(0, 80)}…" is nested deeper than ${limits.maxDepth} levels`, raw);
    }
    if (parts.some((p) => Buffer.byteLength(p) > limits.maxComponentBytes)) {
      throw new ArchiveError(`entry "${raw.slice(0, 80)}…" has a name over ${limits.maxComponentBytes} bytes`, raw);
    }
    const n = kind === 'dir' ? parts.length : parts.length - 1;
    for (let i = 1; i <= n; i++) dirs.add(parts.slice(0, i).join('/'));
    if (dirs.size > limits.maxDirs) {
      throw new ArchiveError(`too many directories: more than ${limits.maxDirs}`, raw);
    }
  };
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
          tick();
          summary.entries++;
          if (summary.entries > limits.maxEntries) {
            throw new ArchiveError(`too many entries: more than ${limits.maxEntries}`, raw);
          }
          const kind = entryKind(entry, raw);
          const name = checkEntryName(raw);
          if (seen.has(name)) throw new ArchiveError(`duplicate entry "${raw}"`, raw);
          seen.add(name);
          checkShape(name, raw, kind);
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
          let entryBytes = 0;
          const compressed = Math.max(1, entry.compressedSize);
          const counter = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              summary.totalBytes += chunk.length;
              entryBytes += chunk.length;
              try {
                tick();
              } catch (err) {
                cb(err as Error);
                return;
              }
              if (entryBytes > RATIO_FLOOR_BYTES && entryBytes > compressed * limits.maxRatio) {
                cb(
                  new ArchiveError(
                    `entry "${raw}" inflates more than ${limits.maxRatio} times its compressed size (a zip bomb)`,
                    raw,
                  ),
                );
              } else if (summary.totalBytes > limits.maxTotalBytes) {
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
            throw err instanceof ArchiveError || err instanceof ArchiveAborted
              ? err
              : new ArchiveError(`entry "${raw}": ${(err as Error).message}`, raw);
          }
          summary.files.push(name);
          zip.readEntry();
        })().catch((err: unknown) => {
          // Close the archive now: an abandoned entry stream must not keep inflating.
          zip.close();
          reject(err as Error);
        });
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
  hooks: ExtractHooks = {},
): Promise<ArchiveSummary> {
  const root = path.resolve(destDir);
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  const inside = (name: string) => {
    const target = path.resolve(root, name);
    if (!target.startsWith(root + path.sep)) throw new ArchiveError(`entry "${name}" escapes the work dir`, name);
    return target;
  };
  // Every file stream is closed before this returns or throws: a stream destroyed by a cancel while its
  // open() is still in flight would otherwise create its file after the caller has removed the work dir.
  const open = new Set<WriteStream>();
  let settled = false;
  try {
    return await walk(
      buf,
      limits,
      async (name, kind) => {
        const target = inside(name);
        if (settled) throw new ArchiveAborted();
        if (kind === 'dir') {
          await fs.mkdir(target, { recursive: true, mode: 0o755 });
          return undefined;
        }
        await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
        if (settled) throw new ArchiveAborted();
        const out = createWriteStream(target, { flags: 'wx', mode: 0o644 });
        open.add(out);
        out.once('close', () => open.delete(out));
        return out;
      },
      hooks,
    );
  } finally {
    settled = true;
    await Promise.all(
      [...open].map((out) => {
        if (out.closed) return undefined;
        if (!out.destroyed) out.destroy();
        return once(out, 'close').catch(() => undefined);
      }),
    );
  }
}
