/**
 * A TCP connection that carries frames both ways: a read loop feeding a FrameDecoder, and a
 * write queue that coalesces every frame queued while the previous write was in flight (or in
 * the same turn of the event loop) into one write, handling partial writes.
 */
import { setImmediate } from "node:timers";
import { type ByteBudget, partialFrameBudget } from "./byte_budget.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder } from "./frame.ts";
import { asError } from "../util/errors.ts";

/**
 * The byte stream a FramedConn runs over: a Deno.Conn (TCP or TLS) fits, and so does the
 * adapter around a node:tls socket (net/node_socket_conn.ts).
 */
export interface ByteConn {
  readonly remoteAddr: Deno.Addr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** Why a framed connection ended; `error` is set when it was not a clean close. */
export interface CloseInfo {
  error?: Error;
}

/** Options for a FramedConn. */
export interface FramedConnOptions {
  maxFrameBytes?: number;
  /** Called for every decoded frame; a throw closes the connection with that error. */
  onFrame: (value: unknown) => void;
  /** Called exactly once when the connection ends for any reason. */
  onClose?: (info: CloseInfo) => void;
  /** Bound on bytes queued behind a slow reader; past it the connection is closed. */
  maxQueuedBytes?: number;
  /** Charged for partially received frames (default: the process-wide partialFrameBudget). */
  budget?: ByteBudget;
}

/** Default bound on queued output: two maximal frames. */
export const DEFAULT_MAX_QUEUED_BYTES = 2 * DEFAULT_MAX_FRAME_BYTES;

const READ_BUFFER_BYTES = 256 * 1024;

/** Owns one Deno.Conn: call send() to queue frames, close() to end it. */
export class FramedConn {
  readonly remote: string;
  readonly #conn: ByteConn;
  readonly #decoder: FrameDecoder;
  readonly #options: FramedConnOptions;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  /** How a write loop start is already scheduled, if it is. */
  #scheduled: "microtask" | "immediate" | undefined;
  #closed = false;
  /** Bytes written and read, for metrics and tests. */
  bytesOut = 0;
  bytesIn = 0;

  constructor(conn: ByteConn, options: FramedConnOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#decoder = new FrameDecoder(
      options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      options.budget ?? partialFrameBudget,
    );
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = `${addr.hostname}:${addr.port}`;
    if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") conn.setNoDelay(true);
    this.#readLoop();
  }

  /** The bound on one received frame; lowered until a connection authenticates. */
  get maxFrameBytes(): number {
    return this.#decoder.maxFrameBytes;
  }

  /** Changes the bound on received frames (applies to frames whose header is not yet read). */
  set maxFrameBytes(value: number) {
    this.#decoder.maxFrameBytes = value;
  }

  /** True once the connection has ended; sends are then dropped. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues one value as a frame; returns false when the connection is already closed. Frames
   * go out after the event loop's current pass, together with everything else queued in it;
   * an `urgent` frame goes out at the end of the current task instead (for a message that is
   * already one batch and on someone's critical path, such as a Raft append or its ack).
   */
  send(value: unknown, urgent = false): boolean {
    if (this.#closed) return false;
    const frame = encodeFrame(value);
    const limit = this.#options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    if (this.#queuedBytes + frame.byteLength > limit) {
      // The peer stopped reading (stalled or partitioned without a reset): queueing more
      // would only grow memory. Closing makes callers fail fast and redial later.
      this.close(new Error(`Peer ${this.remote} is not reading: over ${limit} bytes queued`));
      return false;
    }
    this.#queue.push(frame);
    this.#queuedBytes += frame.byteLength;
    if (this.#writing) return true;
    if (urgent) {
      if (this.#scheduled !== "microtask") {
        this.#scheduled = "microtask";
        queueMicrotask(() => this.#writeLoop());
      }
    } else if (this.#scheduled === undefined) {
      // Start writing once the event loop has handled everything that is ready now (all the
      // requests that arrived together, all the replies one apply released): they share one
      // write. A microtask would run after the first of them, and each write to a loopback
      // socket costs the sender ~10 us of kernel time.
      this.#scheduled = "immediate";
      setImmediate(() => this.#writeLoop());
    }
    return true;
  }

  /** Ends the connection; pending writes are discarded. */
  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#decoder.dispose();
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime: nothing left to release.
    }
    this.#options.onClose?.({ error });
  }

  async #writeLoop(): Promise<void> {
    // Both an immediate and a microtask may have been scheduled: the first to run writes.
    if (this.#writing) return;
    this.#scheduled = undefined;
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#takeQueue();
        let offset = 0;
        while (offset < batch.byteLength) {
          offset += await this.#conn.write(batch.subarray(offset));
        }
        this.bytesOut += batch.byteLength;
      }
    } catch (err) {
      this.close(asError(err));
    } finally {
      this.#writing = false;
    }
  }

  #takeQueue(): Uint8Array {
    const queue = this.#queue;
    const total = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (queue.length === 1) return queue[0];
    const batch = new Uint8Array(total);
    let offset = 0;
    for (const frame of queue) {
      batch.set(frame, offset);
      offset += frame.byteLength;
    }
    return batch;
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(buffer);
        if (n === null || this.#closed) break;
        this.bytesIn += n;
        // Copy out what was read: decoded binary fields are views and must outlive the buffer.
        for (const value of this.#decoder.push(buffer.slice(0, n))) {
          if (this.#closed) return;
          this.#options.onFrame(value);
        }
      }
      if (!this.#closed && this.#decoder.pendingBytes > 0) {
        this.close(
          new Error(
            `Connection closed inside a frame: ${this.#decoder.pendingBytes} bytes pending`,
          ),
        );
        return;
      }
      this.close();
    } catch (err) {
      this.close(this.#closed ? undefined : asError(err));
    }
  }
}
