/**
 * Reading a split straight from its input file when the worker shares the coordinator's
 * filesystem (`mr run`, where every process is on one machine). The split then costs one read
 * instead of a read and a CRC-32C pass at the coordinator, an HTTP transfer, a second CRC-32C
 * pass, a write and a read at the worker.
 *
 * A worker never assumes it shares a filesystem (MapReduce §3.1): the coordinator sends, beside
 * the split's range, the identity of the file it cut (device, inode, size, modification time),
 * and the worker reads locally only when the file at that path is that very file. On another
 * machine, without read permission, or after the file changed, the worker fetches the split over
 * HTTP as usual.
 */
import { isAbsolute } from "node:path";

/** A split as bytes [offset, offset + length) of the file at `path`, with that file's identity. */
export interface LocalInput {
  /** The input's absolute path on the coordinator's machine. */
  path: string;
  offset: number;
  length: number;
  dev: number;
  ino: number;
  /** The whole file's size in bytes. */
  size: number;
  mtimeMs: number;
}

/**
 * One input of a map task that maps several (mr run groups small files, mr/splits.ts): the file
 * name map() gets, the split's index on the coordinator's data server, and where it lies locally.
 */
export interface MapPiece {
  file: string;
  split: number;
  input?: LocalInput;
}

/** The identity of a file: what stat says, or undefined where the platform does not say it. */
export type FileIdentity = Pick<LocalInput, "dev" | "ino" | "size" | "mtimeMs">;

/** The identity of the file at `path` (following links), or undefined when it cannot be told. */
export async function fileIdentity(path: string): Promise<FileIdentity | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return undefined;
  }
  if (info.ino === null || info.mtime === null || !info.isFile) return undefined;
  return { dev: info.dev, ino: info.ino, size: info.size, mtimeMs: info.mtime.getTime() };
}

/** Whether this process can read `input` at its path and the file there is the one described. */
export async function readableLocally(input: LocalInput): Promise<boolean> {
  try {
    const status = await Deno.permissions.query({ name: "read", path: input.path });
    if (status.state !== "granted") return false;
  } catch {
    return false;
  }
  const here = await fileIdentity(input.path);
  return here !== undefined && here.dev === input.dev && here.ino === input.ino &&
    here.size === input.size && here.mtimeMs === input.mtimeMs &&
    input.offset + input.length <= here.size;
}

/** Reads exactly bytes [offset, offset + length) of the file at `path`; throws if it is shorter. */
export async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    const bytes = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) {
        throw new Error(
          `Cannot read the split of ${path}: the file ends ${length - filled} bytes early`,
        );
      }
      filled += n;
    }
    return bytes;
  } finally {
    file.close();
  }
}

/**
 * Whether this process may read the file at `path` and it has `length` bytes: a reducer on the
 * mapper's machine then reads the partition in place, checking its CRC-32C as it reads
 * (mr/checked_source.ts), and otherwise fetches it.
 */
export async function readableInPlace(path: string, length: number): Promise<boolean> {
  try {
    const status = await Deno.permissions.query({ name: "read", path });
    if (status.state !== "granted") return false;
    const info = await Deno.stat(path);
    return info.isFile && info.size === length;
  } catch {
    // Not here, not readable, or gone: fetch it.
    return false;
  }
}

/** `value` as a non-negative safe integer; else a TypeError naming it `<object>.<what>`. */
export function nonNegativeOf(value: unknown, object: string, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Invalid ${object}.${what}: expected a non-negative integer`);
  }
  return value;
}

function nonNegative(value: unknown, what: string): number {
  return nonNegativeOf(value, "input", what);
}

/**
 * `value` as an object whose `path` is an absolute path (of at most 4096 characters); else a
 * TypeError naming it `object`.
 */
export function absolutePathRecord(
  value: unknown,
  object: string,
): Record<string, unknown> & { path: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Invalid ${object}: expected an object`);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.path !== "string" || !isAbsolute(v.path) || v.path.length > 4096) {
    throw new TypeError(`Invalid ${object}.path: expected an absolute path`);
  }
  return v as Record<string, unknown> & { path: string };
}

/** Validates the `input` of a map assignment (absent stays undefined); throws TypeError. */
export function parseLocalInput(value: unknown): LocalInput | undefined {
  if (value === undefined || value === null) return undefined;
  const v = absolutePathRecord(value, "input");
  if (typeof v.mtimeMs !== "number" || !Number.isFinite(v.mtimeMs)) {
    throw new TypeError("Invalid input.mtimeMs: expected a number");
  }
  return {
    path: v.path,
    offset: nonNegative(v.offset, "offset"),
    length: nonNegative(v.length, "length"),
    dev: nonNegative(v.dev, "dev"),
    ino: nonNegative(v.ino, "ino"),
    size: nonNegative(v.size, "size"),
    mtimeMs: v.mtimeMs,
  };
}

/** Most pieces one map task may name. */
const MAX_PIECES = 100_000;

/** Validates the `pieces` of a map assignment (absent stays undefined); throws TypeError. */
export function parseMapPieces(value: unknown): MapPiece[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PIECES) {
    throw new TypeError(`Invalid pieces: expected 1 to ${MAX_PIECES} entries`);
  }
  return value.map((entry, k) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new TypeError(`Invalid pieces[${k}]: expected an object`);
    }
    const e = entry as Record<string, unknown>;
    if (typeof e.file !== "string" || e.file === "") {
      throw new TypeError(`Invalid pieces[${k}].file: expected a file name`);
    }
    const input = parseLocalInput(e.input);
    return { file: e.file, split: nonNegative(e.split, "split"), ...(input ? { input } : {}) };
  });
}
