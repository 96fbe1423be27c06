/**
 * Multiplexed request/response calls over framed TCP connections. Many calls share one
 * connection and are matched by id, so replies may come back in any order; every call has a
 * timeout; a lost connection fails its calls at once and is redialed with capped backoff.
 *
 * Wire format, one msgpack array per frame:
 *   [0, id, method, params]  request      [1, id, result]   success reply
 *   [3, method, params]      notification [2, id, message]  error reply
 */
import { Deadlines } from "./deadlines.ts";
import { FramedConn } from "./framed_conn.ts";
import { DEFAULT_MAX_FRAME_BYTES, FrameError } from "./frame.ts";
import { asError, errorMessage } from "../util/errors.ts";

const REQUEST = 0;
const REPLY_OK = 1;
const REPLY_ERROR = 2;
const NOTIFY = 3;

/** A call got no reply within its timeout. */
export class RpcTimeoutError extends Error {
  constructor(method: string, timeoutMs: number) {
    super(`Call ${method} timed out after ${timeoutMs} ms`);
    this.name = "RpcTimeoutError";
  }
}

/** The connection could not be made or broke before the reply arrived. */
export class ConnectionLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/** The remote handler threw; `message` is the remote error's message. */
export class RemoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteError";
  }
}

/** What a handler learns about the caller. */
export interface RpcContext {
  remote: string;
  /** The connection the call came on, for handlers that keep per-connection state. */
  connection: FramedConn;
}

/** Handles one method; the resolved value is the reply, a throw becomes a RemoteError. */
export type RpcHandler = (params: unknown, context: RpcContext) => unknown | Promise<unknown>;

/** Options shared by server and client. */
export interface RpcServerOptions {
  maxFrameBytes?: number;
  log?: (line: string) => void;
  /** Called when a connection ends, e.g. to forget a peer's identity. */
  onDisconnect?: (connection: FramedConn) => void;
}

/** Accepts connections and dispatches their requests to handlers, each call independently. */
export class RpcServer {
  readonly #handlers = new Map<string, RpcHandler>();
  readonly #connections = new Set<FramedConn>();
  readonly #options: RpcServerOptions;
  #listener?: Deno.Listener;
  #acceptLoop?: Promise<void>;

  constructor(options: RpcServerOptions = {}) {
    this.#options = options;
  }

  /** Registers the handler for a method (requests and notifications alike). */
  handle(method: string, handler: RpcHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Starts listening (port 0 picks a free port) and returns the bound address. */
  listen(hostname: string, port: number): { hostname: string; port: number } {
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    this.#listener = listener;
    this.#acceptLoop = this.#accept(listener);
    const addr = listener.addr as Deno.NetAddr;
    return { hostname: addr.hostname, port: addr.port };
  }

  /** Number of open connections (for status pages and tests). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Stops accepting, closes every connection, and waits for the accept loop to end. */
  async close(): Promise<void> {
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    for (const connection of this.#connections) connection.close();
    await this.#acceptLoop;
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) this.#serve(conn);
    } catch (err) {
      // The listener was closed: the normal way out.
      if (!(err instanceof Deno.errors.BadResource)) {
        this.#options.log?.(`RPC listener stopped: ${errorMessage(err)}`);
      }
    }
  }

  #serve(conn: Deno.Conn): void {
    const connection: FramedConn = new FramedConn(conn, {
      maxFrameBytes: this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onFrame: (value) => this.#dispatch(connection, value),
      onClose: ({ error }) => {
        this.#connections.delete(connection);
        if (error) {
          this.#options.log?.(`Closed connection from ${connection.remote}: ${error.message}`);
        }
        this.#options.onDisconnect?.(connection);
      },
    });
    this.#connections.add(connection);
  }

  #dispatch(connection: FramedConn, frame: unknown): void {
    if (!Array.isArray(frame)) throw new FrameError("Expected an RPC frame (an array)");
    const kind = frame[0];
    if (kind === REQUEST) {
      const [, id, method, params] = frame;
      if (typeof id !== "number" || typeof method !== "string") {
        throw new FrameError("Malformed RPC request: expected [0, id, method, params]");
      }
      this.#call(connection, id, method, params);
    } else if (kind === NOTIFY) {
      const [, method, params] = frame;
      if (typeof method !== "string") {
        throw new FrameError("Malformed RPC notification: expected [3, method, params]");
      }
      const handler = this.#handlers.get(method);
      if (!handler) throw new FrameError(`Unknown RPC notification method: ${method}`);
      try {
        const result = handler(params, { remote: connection.remote, connection });
        if (result instanceof Promise) result.catch((err) => this.#logHandlerError(method, err));
      } catch (err) {
        this.#logHandlerError(method, err);
      }
    } else {
      throw new FrameError(`Unexpected RPC frame kind: ${String(kind)}`);
    }
  }

  #call(connection: FramedConn, id: number, method: string, params: unknown): void {
    const handler = this.#handlers.get(method);
    if (!handler) {
      connection.send([REPLY_ERROR, id, `Unknown method: ${method}`]);
      return;
    }
    let result: unknown;
    try {
      result = handler(params, { remote: connection.remote, connection });
    } catch (err) {
      connection.send([REPLY_ERROR, id, errorMessage(err)]);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => connection.send([REPLY_OK, id, value ?? null]),
        (err) => connection.send([REPLY_ERROR, id, errorMessage(err)]),
      );
    } else {
      connection.send([REPLY_OK, id, result ?? null]);
    }
  }

  #logHandlerError(method: string, err: unknown): void {
    this.#options.log?.(`Notification handler ${method} failed: ${errorMessage(err)}`);
  }
}

/** Options for an RpcClient. */
export interface RpcClientOptions {
  maxFrameBytes?: number;
  /** Default per-call timeout in ms (10 s). */
  timeoutMs?: number;
  /** Cap on the pause between redial attempts after failures (2 s). */
  maxBackoffMs?: number;
  /** Called with every notification the server pushes on this connection. */
  onNotify?: (method: string, params: unknown) => void;
  /** Called after each successful dial, e.g. to send a handshake first. */
  onConnect?: (connection: FramedConn) => void;
  /** Called when an open connection ends, or a dial fails. */
  onDisconnect?: (error?: Error) => void;
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

const INITIAL_BACKOFF_MS = 20;

/** Calls one remote address; connects lazily and redials after failures with capped backoff. */
export class RpcClient {
  readonly #address: { hostname: string; port: number };
  readonly #options: RpcClientOptions;
  readonly #pending = new Map<number, PendingCall>();
  /** Call timeouts, swept by one timer rather than one timer per call. */
  readonly #deadlines = new Deadlines();
  #connection?: FramedConn;
  #connecting?: Promise<FramedConn>;
  #nextId = 1;
  #failures = 0;
  #nextDialAt = 0;
  #closed = false;

  constructor(address: { hostname: string; port: number }, options: RpcClientOptions = {}) {
    this.#address = address;
    this.#options = options;
  }

  /** The address this client dials, as host:port. */
  get address(): string {
    return `${this.#address.hostname}:${this.#address.port}`;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.#connection !== undefined && !this.#connection.closed;
  }

  /** True while a dial is under way (including a pause before redialing). */
  get dialing(): boolean {
    return this.#connecting !== undefined;
  }

  /** Calls a remote method; rejects with RpcTimeoutError, ConnectionLostError or RemoteError. */
  call<T = unknown>(
    method: string,
    params?: unknown,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      if (this.#closed) {
        reject(new ConnectionLostError(`Client for ${this.address} is closed`));
        return;
      }
      const id = this.#nextId++;
      const onAbort = () => finish(asError(options.signal!.reason));
      const finish = (error: Error | undefined, value?: unknown) => {
        if (!this.#pending.delete(id)) return;
        this.#deadlines.cancel(deadline);
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(value as T);
      };
      this.#pending.set(id, {
        resolve: (value) => finish(undefined, value),
        reject: (error) => finish(error),
      });
      const deadline = this.#deadlines.add(
        performance.now() + timeoutMs,
        () => finish(new RpcTimeoutError(method, timeoutMs)),
      );
      if (options.signal) {
        if (options.signal.aborted) return onAbort();
        options.signal.addEventListener("abort", onAbort, { once: true });
      }
      const frame = [REQUEST, id, method, params ?? null];
      const connection = this.#connection;
      if (connection && !connection.closed) {
        connection.send(frame);
      } else {
        this.#connect().then(
          (conn) => {
            if (this.#pending.has(id)) conn.send(frame);
          },
          (err) => finish(asError(err)),
        );
      }
    });
  }

  /**
   * Sends a one-way message; it is dropped (returns false) if no connection can be used now.
   * `urgent` sends it at the end of the current task rather than after the event loop's pass
   * (see FramedConn.send).
   */
  notify(method: string, params?: unknown, urgent = false): boolean {
    const connection = this.#connection;
    if (connection && !connection.closed) {
      return connection.send([NOTIFY, method, params ?? null], urgent);
    }
    this.#connect().catch(() => {});
    return false;
  }

  /** Resolves once connected (dialing if needed); rejects with ConnectionLostError. */
  connect(): Promise<FramedConn> {
    return this.#connect();
  }

  /** Closes the connection and fails every pending call. */
  close(): void {
    this.#closed = true;
    this.#connection?.close();
    this.#failPending(new ConnectionLostError(`Client for ${this.address} is closed`));
    this.#deadlines.close();
  }

  #connect(): Promise<FramedConn> {
    if (this.#connection && !this.#connection.closed) return Promise.resolve(this.#connection);
    if (this.#closed) {
      return Promise.reject(new ConnectionLostError(`Client for ${this.address} is closed`));
    }
    this.#connecting ??= this.#dial().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #dial(): Promise<FramedConn> {
    const wait = this.#nextDialAt - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ ...this.#address, transport: "tcp" });
    } catch (err) {
      this.#failures++;
      const backoff = Math.min(
        INITIAL_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 16),
        this.#options.maxBackoffMs ?? 2000,
      );
      this.#nextDialAt = performance.now() + backoff;
      const error = new ConnectionLostError(
        `Cannot connect to ${this.address}: ${errorMessage(err)}`,
      );
      this.#options.onDisconnect?.(error);
      throw error;
    }
    if (this.#closed) {
      conn.close();
      throw new ConnectionLostError(`Client for ${this.address} is closed`);
    }
    this.#failures = 0;
    this.#nextDialAt = 0;
    const connection: FramedConn = new FramedConn(conn, {
      maxFrameBytes: this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onFrame: (value) => this.#onFrame(value),
      onClose: ({ error }) => {
        if (this.#connection === connection) this.#connection = undefined;
        // A drop right after connecting counts as a failure so redials back off.
        this.#nextDialAt = performance.now() + INITIAL_BACKOFF_MS;
        const reason = error ? `: ${error.message}` : "";
        const lost = new ConnectionLostError(`Connection to ${this.address} lost${reason}`);
        this.#failPending(lost);
        if (!this.#closed) this.#options.onDisconnect?.(lost);
      },
    });
    this.#connection = connection;
    this.#options.onConnect?.(connection);
    return connection;
  }

  #onFrame(frame: unknown): void {
    if (!Array.isArray(frame)) throw new FrameError("Expected an RPC frame (an array)");
    const [kind, a, b] = frame;
    if (kind === NOTIFY && typeof a === "string") {
      this.#options.onNotify?.(a, b);
      return;
    }
    if ((kind !== REPLY_OK && kind !== REPLY_ERROR) || typeof a !== "number") {
      throw new FrameError("Malformed RPC reply: expected [1|2, id, value]");
    }
    const call = this.#pending.get(a);
    if (!call) return; // Timed out or aborted already.
    if (kind === REPLY_OK) call.resolve(b);
    else call.reject(new RemoteError(typeof b === "string" ? b : "Remote error"));
  }

  #failPending(error: Error): void {
    const calls = [...this.#pending.values()];
    for (const call of calls) call.reject(error);
  }
}
