/**
 * Reading and writing files in folders someone else may write, without following their links.
 * network-init runs as root over the whole data volume while each node's container mounts its
 * own folder of it read-write (compose), so a node's code can plant links there: root's
 * `writeFile` through a planted `identity.json.<pid>.tmp` overwrote the admin's key, and reading
 * a linked `identity.json` gave node-3 node-1's id in the Redis ACL (review of ATK-13's mount
 * fix, HIGH). Here a file is read only when it is itself a regular file (O_NOFOLLOW, fstat of
 * the open descriptor, bounded in size), and written by creating a fresh file with O_EXCL under
 * a random name (no planted name can be opened) and renaming it over the target (rename
 * replaces a link, never writes through it). Directories on the way must be real directories.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

/** Identity files, certificates, network configs: a few KB. */
export const ROOT_FILE_MAX_BYTES = 1 << 20;

export type UnsafeFileCode = 'link' | 'not-regular' | 'too-large' | 'not-directory';

/** A path that is not what it must be (a link, a FIFO, a directory that is a link, …). */
export class UnsafeFileError extends Error {
  override readonly name = 'UnsafeFileError';
  readonly code: UnsafeFileCode;
  constructor(code: UnsafeFileCode, file: string, what: string) {
    super(`${file}: ${what} (${code}); refusing to follow or use it`);
    this.code = code;
  }
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** `dir` exists as a real directory (created, mode 0700, when absent); never a link to one. */
export function realDirectory(dir: string, mode = 0o700): void {
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink())
      throw new UnsafeFileError('link', dir, 'a symbolic link where a directory must be');
    if (!st.isDirectory()) throw new UnsafeFileError('not-directory', dir, 'not a directory');
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
    mkdirSync(path.dirname(dir), { recursive: true });
    realDirectory(path.dirname(dir));
    mkdirSync(dir, { mode });
  }
}

/**
 * The text of `file` if it is a regular file, undefined if there is none; UnsafeFileError for a
 * link (dangling or not), a FIFO, device or directory, or more than `maxBytes`.
 */
export function readRegularFile(file: string, maxBytes = ROOT_FILE_MAX_BYTES): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO someone planted must not hang us; O_NOFOLLOW: ELOOP on a link.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    if (errno(err) === 'ELOOP') throw new UnsafeFileError('link', file, 'a symbolic link');
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UnsafeFileError('not-regular', file, 'not a regular file');
    if (st.size > maxBytes) throw new UnsafeFileError('too-large', file, `over ${maxBytes} bytes`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `text` to `file` whole or not at all, without following anything planted: the bytes go
 * to a new file created with O_EXCL | O_NOFOLLOW under a random name in `tmpDir` (default: the
 * target's own folder; network-init passes a folder no container mounts), which is renamed over
 * `file`. A link at `file` is replaced, never written through.
 */
export function writeFileNoFollow(
  file: string,
  text: string | Uint8Array,
  o: { readonly mode?: number; readonly tmpDir?: string } = {},
): void {
  const dir = path.dirname(file);
  realDirectory(dir, 0o755);
  const tmpDir = o.tmpDir ?? dir;
  realDirectory(tmpDir);
  const tmp = path.join(tmpDir, `.${path.basename(file)}.${randomBytes(12).toString('hex')}.tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    o.mode ?? 0o600,
  );
  try {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Where root works over folders others write (network-init): how it reads and writes there.
 * Without it a file is read as any process reads its own (links followed: a key mounted from a
 * secret store may be one) and written without following planted names all the same.
 */
export interface ForeignFolder {
  /** Where new files are made before they are renamed into place: a folder no container mounts. */
  readonly tmpDir: string;
}

/** `file`'s text, or undefined if there is none; as a regular file only when `foreign` is given. */
export function readOwnOrForeign(file: string, foreign: ForeignFolder | undefined): string | undefined {
  if (foreign) return readRegularFile(file);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}
