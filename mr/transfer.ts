/**
 * Moving MapReduce data over HTTP without holding it in memory: streaming a file (or a byte
 * range of one) out, streaming a request or response body into a file while counting its length
 * and CRC-32C, and the checks that make a short or corrupt transfer an error, never data.
 * Every transfer carries its length (Content-Length) and CRC-32C (the x-raftmr-crc32c header,
 * or the values the coordinator recorded when the map finished).
 */
import { crc32c } from "../util/crc32c.ts";

/** Header carrying a transfer's CRC-32C as 8 lowercase hex digits. */
export const CRC_HEADER = "x-raftmr-crc32c";

/** A transfer's bytes did not match its announced length or CRC-32C. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IntegrityError";
  }
}

/** Length and CRC-32C of some bytes. */
export interface Checksum {
  length: number;
  crc: number;
}

/** Formats a CRC for CRC_HEADER. */
export function crcHex(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, "0");
}

/** Parses CRC_HEADER's value; undefined when absent or malformed. */
export function parseCrcHex(value: string | null): number | undefined {
  return value !== null && /^[0-9a-f]{8}$/.test(value) ? parseInt(value, 16) : undefined;
}

/** Compares two secrets in time independent of where they differ. */
export function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** The bearer token of a request's Authorization header, or undefined. */
export function bearerToken(request: Request): string | undefined {
  const match = /^Bearer ([A-Za-z0-9_-]{1,256})$/.exec(request.headers.get("authorization") ?? "");
  return match?.[1];
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/**
 * Streams `body` into a new file at `path`, then checks length and CRC against `expect` when
 * given (IntegrityError on a mismatch, the file removed). `sync` fsyncs before returning.
 * Returns what was received.
 */
export async function receiveToFile(
  body: ReadableStream<Uint8Array>,
  path: string,
  expect?: Partial<Checksum>,
  sync = false,
): Promise<Checksum> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  let length = 0;
  let crc = 0;
  let ok = false;
  try {
    for await (const chunk of body) {
      crc = crc32c(chunk, crc);
      length += chunk.length;
      if (expect?.length !== undefined && length > expect.length) {
        throw new IntegrityError(`Transfer is longer than its ${expect.length} bytes`);
      }
      await writeAll(file, chunk);
    }
    if (expect?.length !== undefined && length !== expect.length) {
      throw new IntegrityError(`Transfer is truncated: ${length} of ${expect.length} bytes`);
    }
    if (expect?.crc !== undefined && crc !== expect.crc) {
      throw new IntegrityError(
        `Transfer is corrupt: CRC-32C ${crcHex(crc)} where ${crcHex(expect.crc)} was announced`,
      );
    }
    if (sync) await file.sync();
    ok = true;
    return { length, crc };
  } finally {
    file.close();
    if (!ok) await Deno.remove(path).catch(() => {});
  }
}

/** Length and CRC-32C of a file, read as a stream. */
export async function fileChecksum(path: string): Promise<Checksum> {
  const file = await Deno.open(path, { read: true });
  let length = 0;
  let crc = 0;
  for await (const chunk of file.readable) {
    crc = crc32c(chunk, crc);
    length += chunk.length;
  }
  return { length, crc };
}

const CHUNK = 256 * 1024;

/** A stream of bytes [offset, offset + length) of the file at `path`; the file closes at the end. */
export async function rangeStream(
  path: string,
  offset: number,
  length: number,
): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  await file.seek(offset, Deno.SeekMode.Start);
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left === 0) {
        file.close();
        controller.close();
        return;
      }
      const buffer = new Uint8Array(Math.min(CHUNK, left));
      const n = await file.read(buffer);
      if (n === null) {
        file.close();
        controller.error(new IntegrityError(`File ${path} ended ${left} bytes early`));
        return;
      }
      left -= n;
      controller.enqueue(buffer.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  });
}

/** Checksum of bytes [offset, offset + length) of a file. */
export async function rangeChecksum(
  path: string,
  offset: number,
  length: number,
): Promise<Checksum> {
  let crc = 0;
  let got = 0;
  for await (const chunk of await rangeStream(path, offset, length)) {
    crc = crc32c(chunk, crc);
    got += chunk.length;
  }
  return { length: got, crc };
}

/** A failed HTTP transfer; `refused` when the server could not be reached at all. */
export class TransferError extends Error {
  readonly refused: boolean;
  readonly status?: number;
  constructor(message: string, refused: boolean, status?: number) {
    super(message);
    this.name = "TransferError";
    this.refused = refused;
    this.status = status;
  }
}

/**
 * GETs `url` with the job token into the file at `path`, checking it against `expect` and
 * against the response's own length and CRC headers. Throws TransferError (refused connection,
 * HTTP error, timeout) or IntegrityError; a failed transfer leaves no file.
 */
export async function fetchToFile(
  url: string,
  token: string,
  path: string,
  expect: Partial<Checksum> = {},
  timeoutMs = 60_000,
): Promise<Checksum> {
  let response: Response;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // fetch wraps "connection refused" in a TypeError; anything else may be transient.
      const refused = /refused|ECONNREFUSED|os error 111/i.test(message);
      throw new TransferError(`Cannot fetch ${url}: ${message}`, refused);
    }
    if (!response.ok) {
      const text = (await response.text().catch(() => "")).slice(0, 200);
      throw new TransferError(
        `Cannot fetch ${url}: HTTP ${response.status}: ${text}`,
        false,
        response.status,
      );
    }
    const length = expect.length ?? numberOrUndefined(response.headers.get("content-length"));
    const crc = expect.crc ?? parseCrcHex(response.headers.get(CRC_HEADER));
    if (length === undefined || crc === undefined) {
      await response.body?.cancel();
      throw new IntegrityError(`Transfer from ${url} announces no length or no CRC-32C`);
    }
    try {
      return await receiveToFile(response.body!, path, { length, crc });
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new IntegrityError(`Transfer from ${url} broke off: ${message}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

function numberOrUndefined(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}
