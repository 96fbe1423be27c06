/**
 * Adapts a node:net/node:tls socket to the ByteConn interface FramedConn reads and writes, so a
 * connection accepted by node:tls (the only Deno server API that verifies client certificates,
 * see net/peer_tls.ts) carries frames exactly like a Deno.Conn.
 */
import type { Socket } from "node:net";
import type { ByteConn } from "./framed_conn.ts";

/** Bytes buffered ahead of the reader before the socket is paused (backpressure). */
const HIGH_WATER_BYTES = 1024 * 1024;

/** A ByteConn over a node socket; read() drains what the socket's data events delivered. */
export class NodeSocketConn implements ByteConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly socket: Socket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #pendingWrites = new Set<(error: Error) => void>();

  constructor(socket: Socket) {
    this.socket = socket;
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "unknown",
      port: socket.remotePort ?? 0,
    };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
      if (this.#buffered >= HIGH_WATER_BYTES) socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (error: Error) => this.#finish(error));
  }

  /** Disables Nagle's algorithm (already done at construction; kept for FramedConn). */
  setNoDelay(noDelay = true): void {
    this.socket.setNoDelay(noDelay);
  }

  /** Reads into `p`; resolves null at the end of the stream, rejects after a socket error. */
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    let n = 0;
    while (n < p.byteLength && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.byteLength, p.byteLength - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.byteLength) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered < HIGH_WATER_BYTES && this.socket.isPaused()) this.socket.resume();
    return n;
  }

  /** Writes all of `p`; resolves once the socket has taken it, rejects when it closed. */
  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.reject(new Deno.errors.BrokenPipe("Socket is closed"));
    return new Promise((resolve, reject) => {
      this.#pendingWrites.add(reject);
      this.socket.write(p, (error?: Error | null) => {
        this.#pendingWrites.delete(reject);
        if (error) reject(error);
        else resolve(p.byteLength);
      });
    });
  }

  /** Destroys the socket; pending reads end and pending writes fail. */
  close(): void {
    this.socket.destroy();
    this.#finish();
  }

  #finish(error?: Error): void {
    if (error && !this.#error) this.#error = error;
    this.#ended = true;
    const failure = this.#error ?? new Deno.errors.BrokenPipe("Socket is closed");
    for (const reject of this.#pendingWrites) reject(failure);
    this.#pendingWrites.clear();
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
