/**
 * A fault-injecting TCP proxy for daemon tests: put one between peers (or between a client and a
 * node) and cut, stall or slow the link at will.
 *
 * Blocking has two modes:
 * - "reset" (default): every open connection is destroyed at once, and new connections are
 *   accepted then immediately closed. Peers see errors quickly and redial: a crisp partition.
 * - "stall": like a real network partition under TCP: nothing is forwarded in either direction
 *   and new connections are accepted but not dialled through; bytes already read wait inside the
 *   proxy. On unblocking, everything resumes in order (no byte is ever lost or reordered).
 */

/** How setBlocked(true) cuts the link; see the module comment. */
export type BlockMode = "reset" | "stall";

interface Link {
  client: Deno.Conn;
  upstream?: Deno.Conn;
  closed: boolean;
}

interface Chunk {
  bytes: Uint8Array;
  due: number;
}

const READ_BUFFER_BYTES = 64 * 1024;

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

/** A TCP proxy on 127.0.0.1 forwarding to one target, with blocking and delay injection. */
export class TcpProxy {
  readonly #target: { hostname: string; port: number };
  readonly #links = new Set<Link>();
  readonly #tasks = new Set<Promise<void>>();
  /** Wakes sleepers and gate waiters; all are woken on every state change and on close. */
  readonly #waiters = new Set<() => void>();
  #listener?: Deno.Listener;
  #blocked = false;
  #mode: BlockMode = "reset";
  #delayMs = 0;
  #closed = false;
  #bytesToTarget = 0;
  #bytesFromTarget = 0;
  #accepted = 0;

  constructor(target: { hostname: string; port: number }) {
    this.#target = { hostname: target.hostname, port: target.port };
  }

  /** Starts listening on 127.0.0.1 on a free port. */
  listen(): Promise<{ port: number }> {
    if (this.#listener) throw new Error("TcpProxy is already listening");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
    this.#listener = listener;
    this.#track(this.#acceptLoop(listener));
    return Promise.resolve({ port: this.port });
  }

  /** The port the proxy listens on (after listen()). */
  get port(): number {
    if (!this.#listener) throw new Error("TcpProxy is not listening");
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** "127.0.0.1:port" of the proxy, for --peers lists and clients. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Whether the link is currently cut. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Cuts (true) or restores (false) the link; `mode` applies when cutting. */
  setBlocked(blocked: boolean, mode: BlockMode = "reset"): void {
    this.#blocked = blocked;
    if (blocked) {
      this.#mode = mode;
      if (mode === "reset") { for (const link of this.#links) this.#closeLink(link); }
    }
    this.#wakeAll();
  }

  /** Delays every chunk forwarded from now on by `ms` (0 = none); order is preserved. */
  setDelayMs(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`Invalid delay: ${ms}`);
    this.#delayMs = ms;
  }

  /** Bytes delivered to the target so far. */
  get bytesToTarget(): number {
    return this.#bytesToTarget;
  }

  /** Bytes delivered from the target back to clients so far. */
  get bytesFromTarget(): number {
    return this.#bytesFromTarget;
  }

  /** Connections accepted so far (including ones closed at once while blocked). */
  get connectionsAccepted(): number {
    return this.#accepted;
  }

  /** Connections currently open through the proxy. */
  get activeConnections(): number {
    return this.#links.size;
  }

  /** Stops listening, destroys every connection and waits for all internal tasks to end. */
  async close(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    for (const link of this.#links) this.#closeLink(link);
    this.#wakeAll();
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  #wakeAll(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves after `ms`, or earlier on any state change or close. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(wake, ms) : undefined;
      this.#waiters.add(wake);
    });
  }

  /** Waits while the link is stalled; returns false when the link should stop. */
  async #pass(link: Link): Promise<boolean> {
    while (this.#blocked && !link.closed && !this.#closed) await this.#sleep(Infinity);
    return !link.closed && !this.#closed;
  }

  #closeLink(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    closeQuietly(link.client);
    closeQuietly(link.upstream);
    this.#links.delete(link);
    this.#wakeAll();
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        this.#accepted++;
        if (this.#closed || (this.#blocked && this.#mode === "reset")) {
          closeQuietly(conn);
          continue;
        }
        const link: Link = { client: conn, closed: false };
        this.#links.add(link);
        this.#track(this.#serve(link));
      }
    } catch {
      // The listener was closed.
    }
  }

  async #serve(link: Link): Promise<void> {
    try {
      if (!(await this.#pass(link))) return;
      try {
        link.upstream = await Deno.connect({ ...this.#target, transport: "tcp" });
      } catch {
        return; // Target down: the client sees its connection closed.
      }
      if (link.closed) {
        closeQuietly(link.upstream);
        return;
      }
      await Promise.all([
        this.#pump(link, link.client, link.upstream, true),
        this.#pump(link, link.upstream, link.client, false),
      ]);
    } finally {
      this.#closeLink(link);
    }
  }

  /** Forwards one direction; a reader feeds a queue so a delay does not throttle throughput. */
  async #pump(link: Link, src: Deno.Conn, dst: Deno.Conn, toTarget: boolean): Promise<void> {
    const queue: Chunk[] = [];
    let ended = false;
    let wakeWriter: (() => void) | undefined;
    const writer = (async () => {
      while (true) {
        if (queue.length === 0) {
          if (ended || link.closed) return;
          await new Promise<void>((resolve) => (wakeWriter = resolve));
          wakeWriter = undefined;
          continue;
        }
        const chunk = queue[0];
        const wait = chunk.due - Date.now();
        if (wait > 0) {
          await this.#sleep(wait);
          if (link.closed || this.#closed) return;
          continue;
        }
        if (!(await this.#pass(link))) return;
        queue.shift();
        let offset = 0;
        while (offset < chunk.bytes.length) offset += await dst.write(chunk.bytes.subarray(offset));
        if (toTarget) this.#bytesToTarget += chunk.bytes.length;
        else this.#bytesFromTarget += chunk.bytes.length;
      }
    })().catch(() => this.#closeLink(link));
    // A closed link must also release a writer waiting for data.
    const release = () => wakeWriter?.();
    this.#waiters.add(release);
    try {
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      while (!link.closed) {
        const n = await src.read(buffer);
        if (n === null) break;
        queue.push({ bytes: buffer.slice(0, n), due: Date.now() + this.#delayMs });
        wakeWriter?.();
      }
    } catch {
      // Reset or closed under us: the link is torn down below.
    } finally {
      ended = true;
      wakeWriter?.();
    }
    await writer;
    try {
      // Propagate the half-close so request/response protocols that shut down writes still work.
      if (!link.closed) await (dst as Deno.TcpConn).closeWrite();
    } catch {
      this.#closeLink(link);
    } finally {
      this.#waiters.delete(release);
    }
  }
}
