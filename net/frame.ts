/**
 * Length-prefixed msgpack frames: a u32 big-endian body length, then the msgpack body.
 * The decoder is incremental (bytes arrive in arbitrary chunks) and bounded (a length over the
 * limit is rejected before any body byte is buffered).
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { errorMessage } from "../util/errors.ts";
import type { ByteBudget } from "./byte_budget.ts";

/** Default bound on one frame's body: large enough for a 1 MiB snapshot chunk plus headroom. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** A frame that cannot be accepted: too long, not msgpack, or not the expected shape. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

// One encoder/decoder per module: both reuse internal buffers, which matters on the hot path.
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/** Encodes one value as a complete frame (header + body) in a single fresh buffer. */
export function encodeFrame(value: unknown): Uint8Array {
  // A view into the encoder's reusable buffer: copied once, into the frame, right below.
  const body = encoder.encodeSharedRef(value);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Decodes one msgpack body; throws FrameError when it is not valid msgpack. */
export function decodeBody(body: Uint8Array): unknown {
  try {
    return decoder.decode(body);
  } catch (err) {
    throw new FrameError(`Invalid msgpack body: ${errorMessage(err)}`);
  }
}

/**
 * Incremental frame decoder for one connection. push() returns every value completed by the
 * chunk; after it throws, the connection is unusable and must be closed.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  readonly #budget: ByteBudget | undefined;
  #buffer = new Uint8Array(0);
  #start = 0;
  #end = 0;

  /**
   * `budget`, when given, is charged for the buffer that holds partial frames; a push that
   * would take more than it grants throws FrameError (and the caller closes the connection).
   */
  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES, budget?: ByteBudget) {
    this.#maxFrameBytes = checkMax(maxFrameBytes);
    this.#budget = budget;
  }

  /** The current bound on one frame's body. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** Changes the bound on one frame's body, e.g. raised once a connection has authenticated. */
  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkMax(value);
  }

  /** Gives the partial-frame buffer back to the budget; call when the connection ends. */
  dispose(): void {
    this.#reset();
  }

  /** Bytes received but not yet forming a complete frame. */
  get pendingBytes(): number {
    return this.#end - this.#start;
  }

  /** Bytes allocated for buffering partial frames (bounded by one frame plus one chunk). */
  get capacity(): number {
    return this.#buffer.byteLength;
  }

  /** Feeds received bytes; returns the decoded values of all frames they complete. */
  push(chunk: Uint8Array): unknown[] {
    const values: unknown[] = [];
    // Fast path: nothing buffered, decode straight out of the chunk without copying it.
    let data = chunk;
    let pos = 0;
    let end = chunk.byteLength;
    if (this.#end > this.#start) {
      this.#append(chunk);
      data = this.#buffer;
      pos = this.#start;
      end = this.#end;
    }
    while (end - pos >= FRAME_HEADER_BYTES) {
      const length = ((data[pos] << 24) >>> 0) + (data[pos + 1] << 16) + (data[pos + 2] << 8) +
        data[pos + 3];
      if (length > this.#maxFrameBytes) {
        throw new FrameError(
          `Frame of ${length} bytes exceeds the maximum of ${this.#maxFrameBytes} bytes`,
        );
      }
      if (end - pos - FRAME_HEADER_BYTES < length) break;
      const bodyStart = pos + FRAME_HEADER_BYTES;
      values.push(decodeBody(data.subarray(bodyStart, bodyStart + length)));
      pos = bodyStart + length;
    }
    if (data === chunk) {
      if (pos < end) {
        this.#reset();
        this.#append(chunk.subarray(pos));
      }
    } else {
      this.#start = pos;
      // Decoded binary values are views into this buffer, so it is never rewound or reused.
      if (this.#start === this.#end) this.#reset();
    }
    return values;
  }

  #reset(): void {
    this.#budget?.release(this.#buffer.byteLength);
    this.#buffer = new Uint8Array(0);
    this.#start = this.#end = 0;
  }

  #append(bytes: Uint8Array): void {
    if (this.#end + bytes.byteLength > this.#buffer.byteLength) {
      // Move to a fresh buffer rather than compacting in place: values decoded earlier may still
      // be views into the old one (msgpack bin fields are returned as subarrays).
      const pending = this.#end - this.#start;
      // Size for the whole frame in progress when its header is here, so a large frame
      // arriving in small chunks is copied once; never more, or the buffer would keep growing.
      let frameBytes = 0;
      if (pending >= FRAME_HEADER_BYTES) {
        const b = this.#buffer;
        const p = this.#start;
        frameBytes = FRAME_HEADER_BYTES +
          (((b[p] << 24) >>> 0) + (b[p + 1] << 16) + (b[p + 2] << 8) + b[p + 3]);
      }
      const next = new Uint8Array(
        Math.max(
          pending + bytes.byteLength,
          64 * 1024,
          Math.min(frameBytes, this.#maxFrameBytes + 4),
        ),
      );
      if (this.#budget && !this.#budget.reserve(next.byteLength - this.#buffer.byteLength)) {
        throw new FrameError(
          `Partial frames over the budget of ${this.#budget.limit} bytes: ` +
            `this connection wanted ${next.byteLength} bytes`,
        );
      }
      next.set(this.#buffer.subarray(this.#start, this.#end), 0);
      this.#buffer = next;
      this.#start = 0;
      this.#end = pending;
    }
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.byteLength;
  }
}

function checkMax(maxFrameBytes: number): number {
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes <= 0) {
    throw new RangeError(`Invalid maximum frame size: ${maxFrameBytes}`);
  }
  return maxFrameBytes;
}
