/**
 * Multiplexed request/response calls over framed TCP connections. Many calls share one
 * connection and are matched by id, so replies may come back in any order; every call has a
 * timeout; a lost connection fails its calls at once and is redialed with capped backoff.
 *
 * Wire format, one msgpack array per frame:
 *   [0, id, method, params]  request      [1, id, result]   success reply
 *   [3, method, params]      notification [2, id, message]  error reply
 */
import { acceptLoop, ConnectionGate, RateLimitedLog } from "./conn_gate.ts";
import { Deadlines } from "./deadlines.ts";
import { type ByteConn, FramedConn } from "./framed_conn.ts";
import { asError, errorMessage } from "../util/errors.ts";
import { DEFAULT_MAX_FRAME_BYTES, FrameError } from "./frame.ts";
import {
  admit,
  HANDSHAKE_MAX_FRAME_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  HandshakeError,
  type HandshakePolicy,
  type Hello,
  type Identity,
  parseAnswer,
  parseHello,
  type TransportFacts,
  welcome,
} from "./handshake.ts";
// Types only: node:tls loads when a TLS server opens (open()), not in every process that dials.
import type { TlsListenerHandle, TlsMaterial } from "./peer_tls.ts";

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
  /** Who the handshake admitted (undefined on a server without a handshake). */
  identity?: Identity;
}

/** Who may call a method: any admitted connection, or only an authenticated peer. */
export type Access = "any" | "peer";

/** Handles one method; the resolved value is the reply, a throw becomes a RemoteError. */
export type RpcHandler = (params: unknown, context: RpcContext) => unknown | Promise<unknown>;

/** Options shared by server and client. */
export interface RpcServerOptions {
  maxFrameBytes?: number;
  log?: (line: string) => void;
  /** Called when a connection ends, e.g. to forget a peer's identity. */
  onDisconnect?: (connection: FramedConn) => void;
  /**
   * When set, every connection must complete the handshake (net/handshake.ts) before any of
   * its frames is dispatched, and "peer" methods are open to admitted peers only.
   */
  handshake?: HandshakePolicy;
  /** When set, the port speaks TLS and verifies client certificates against the CA. */
  tls?: TlsMaterial;
  /** Cap on concurrent connections; connections past it are closed at once (default 1024). */
  maxConnections?: number;
  /** The listener's name in logs and metrics (default "rpc"). */
  name?: string;
}

/** Default cap on one listener's concurrent connections. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** A connection's handshake state: admitted, still expected, or refused and about to close. */
type ConnState = Identity | "pending" | "refused";

/** Accepts connections and dispatches their requests to handlers, each call independently. */
export class RpcServer {
  readonly #handlers = new Map<string, { handler: RpcHandler; access: Access }>();
  readonly #connections = new Map<FramedConn, ConnState>();
  readonly #options: RpcServerOptions;
  readonly #gate: ConnectionGate;
  readonly #refusals: RateLimitedLog;
  #listener?: Deno.Listener;
  #tlsListener?: TlsListenerHandle;
  #acceptLoop?: Promise<void>;

  constructor(options: RpcServerOptions = {}) {
    this.#options = options;
    this.#gate = new ConnectionGate(
      options.name ?? "rpc",
      options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    );
    this.#refusals = new RateLimitedLog((line) => options.log?.(line));
  }

  /**
   * Registers the handler for a method (requests and notifications alike); a "peer" method is
   * refused, and its connection closed, unless the handshake admitted the caller as a peer.
   */
  handle(method: string, handler: RpcHandler, access: Access = "any"): void {
    this.#handlers.set(method, { handler, access });
  }

  /** Starts listening on plain TCP (port 0 picks a free port) and returns the bound address. */
  listen(hostname: string, port: number): { hostname: string; port: number } {
    if (this.#options.tls) throw new TypeError("A TLS RpcServer starts with open()");
    return this.serve(Deno.listen({ hostname, port, transport: "tcp" }));
  }

  /**
   * Serves plain TCP connections from a listener the caller bound earlier, and returns its
   * address. Connections made before this call wait in the listen backlog meanwhile: `mr run`
   * binds its port, starts its workers, and only then loads and starts its coordinator.
   */
  serve(listener: Deno.TcpListener): { hostname: string; port: number } {
    if (this.#options.tls) throw new TypeError("A TLS RpcServer starts with open()");
    this.#listener = listener;
    this.#acceptLoop = acceptLoop(
      listener,
      this.#gate.name,
      (conn) => this.#accept(conn),
      this.#options.log,
    );
    const addr = listener.addr as Deno.NetAddr;
    return { hostname: addr.hostname, port: addr.port };
  }

  /** Starts listening, over TLS when the server has TLS material; returns the bound address. */
  async open(hostname: string, port: number): Promise<{ hostname: string; port: number }> {
    const material = this.#options.tls;
    if (!material) return this.listen(hostname, port);
    const { listenTls } = await import("./peer_tls.ts");
    this.#tlsListener = await listenTls({
      hostname,
      port,
      material,
      admit: (socket) => {
        if (!this.#gate.enter()) {
          this.#refuse("cap", `Refused a ${this.#gate.name} connection: ${this.#capReason()}`);
          return false;
        }
        socket.once("close", () => this.#gate.leave());
        return true;
      },
      onConnection: ({ conn, certificateVerified, certificateError }) =>
        this.#serve(conn, { tls: true, certificateVerified, certificateError }),
      onTlsError: (remote, error) => {
        this.#gate.countRefusal();
        this.#refuse(
          "tls",
          `Refused ${this.#gate.name} connection from ${remote}: ${error.message}`,
        );
      },
      onListenerError: (error) =>
        this.#refuse("listener", `${this.#gate.name} listener error: ${error.message}`),
    });
    return this.#tlsListener.addr;
  }

  /** Number of open connections (for status pages and tests). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** The listener's connection counters (open, accepted, refused), for /metrics. */
  get gate(): ConnectionGate {
    return this.#gate;
  }

  /** Stops accepting, closes every connection, and waits for the accept loop to end. */
  async close(): Promise<void> {
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    const closing = this.#tlsListener?.close();
    for (const connection of this.#connections.keys()) connection.close();
    await this.#acceptLoop;
    await closing;
  }

  /** A plain TCP connection: admitted under the cap or closed at once. */
  #accept(conn: Deno.Conn): void {
    if (!this.#gate.enter()) {
      try {
        conn.close();
      } catch {
        // Already gone.
      }
      this.#refuse("cap", `Refused a ${this.#gate.name} connection: ${this.#capReason()}`);
      return;
    }
    this.#serve(conn, { tls: false, certificateVerified: false }, () => this.#gate.leave());
  }

  #capReason(): string {
    return `${this.#gate.max} connections open (the cap)`;
  }

  #refuse(key: string, line: string): void {
    this.#refusals.line(key, line);
  }

  #serve(conn: ByteConn, facts: TransportFacts, onEnd?: () => void): void {
    const policy = this.#options.handshake;
    // A connection that has not completed its handshake in time is closed.
    const timer = policy
      ? setTimeout(() => {
        if (this.#connections.get(connection) === "pending") {
          connection.close(new Error(`No handshake within ${HANDSHAKE_TIMEOUT_MS} ms`));
        }
      }, HANDSHAKE_TIMEOUT_MS)
      : undefined;
    const connection: FramedConn = new FramedConn(conn, {
      // Until the handshake completes only a Hello may arrive, and a Hello is small: a
      // stranger cannot make this node buffer a large frame.
      maxFrameBytes: policy
        ? HANDSHAKE_MAX_FRAME_BYTES
        : this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onFrame: (value) => {
        const state = this.#connections.get(connection);
        if (state === "pending") this.#greet(connection, value, facts, timer);
        else if (state !== "refused") this.#dispatch(connection, value, state);
      },
      onClose: ({ error }) => {
        clearTimeout(timer);
        const state = this.#connections.get(connection);
        this.#connections.delete(connection);
        onEnd?.();
        if (error && state !== "pending" && state !== "refused") {
          this.#options.log?.(`Closed connection from ${connection.remote}: ${error.message}`);
        } else if (error && state === "pending") {
          this.#gate.countRefusal();
          this.#refuse(
            refusalKey(error.message),
            `Refused ${this.#gate.name} connection from ${connection.remote}: ${error.message}`,
          );
        }
        this.#options.onDisconnect?.(connection);
      },
    });
    if (!policy) {
      this.#connections.set(connection, { role: "client" });
      return;
    }
    this.#connections.set(connection, "pending");
  }

  /** Handles a connection's first frame: admits it, or answers Refused and closes it. */
  #greet(
    connection: FramedConn,
    value: unknown,
    facts: TransportFacts,
    timer: ReturnType<typeof setTimeout> | undefined,
  ): void {
    clearTimeout(timer);
    let identity: Identity;
    try {
      identity = admit(parseHello(value), facts, this.#options.handshake!);
    } catch (error) {
      const reason = errorMessage(error);
      this.#connections.set(connection, "refused");
      this.#gate.countRefusal();
      this.#refuse(
        refusalKey(reason),
        `Refused ${this.#gate.name} connection from ${connection.remote}: ${reason}`,
      );
      connection.send({ type: "refused", reason }, true);
      // Long enough for the refusal to be written; nothing it sends meanwhile is read.
      setTimeout(() => connection.close(), 100);
      return;
    }
    this.#connections.set(connection, identity);
    connection.maxFrameBytes = this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    connection.send(welcome(this.#options.handshake!.selfId), true);
  }

  #dispatch(connection: FramedConn, frame: unknown, identity: Identity | undefined): void {
    if (!Array.isArray(frame)) throw new FrameError("Expected an RPC frame (an array)");
    const kind = frame[0];
    if (kind === REQUEST) {
      const [, id, method, params] = frame;
      if (typeof id !== "number" || typeof method !== "string") {
        throw new FrameError("Malformed RPC request: expected [0, id, method, params]");
      }
      this.#call(connection, id, method, params, identity);
    } else if (kind === NOTIFY) {
      const [, method, params] = frame;
      if (typeof method !== "string") {
        throw new FrameError("Malformed RPC notification: expected [3, method, params]");
      }
      const entry = this.#handlers.get(method);
      if (!entry) throw new FrameError(`Unknown RPC notification method: ${method}`);
      this.#checkAccess(entry.access, method, identity);
      try {
        const result = entry.handler(params, { remote: connection.remote, connection, identity });
        if (result instanceof Promise) result.catch((err) => this.#logHandlerError(method, err));
      } catch (err) {
        this.#logHandlerError(method, err);
      }
    } else {
      throw new FrameError(`Unexpected RPC frame kind: ${String(kind)}`);
    }
  }

  #call(
    connection: FramedConn,
    id: number,
    method: string,
    params: unknown,
    identity: Identity | undefined,
  ): void {
    const entry = this.#handlers.get(method);
    if (!entry) {
      connection.send([REPLY_ERROR, id, `Unknown method: ${method}`]);
      return;
    }
    this.#checkAccess(entry.access, method, identity);
    let result: unknown;
    try {
      result = entry.handler(params, { remote: connection.remote, connection, identity });
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

  /** A client calling a peer method is not a mistake to answer but a connection to close. */
  #checkAccess(access: Access, method: string, identity: Identity | undefined): void {
    if (access === "peer" && this.#options.handshake && identity?.role !== "peer") {
      this.#gate.countRefusal();
      throw new FrameError(`Method ${method} is open to cluster peers only`);
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
  /** Sent as the first frame of every connection; the call waits for the Welcome. */
  hello?: Hello;
  /** Opens the byte stream (default: plain TCP); net/peer_tls.ts dialTls for TLS. */
  dial?: (address: { hostname: string; port: number }) => Promise<ByteConn>;
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
  /** The dial waiting for its Welcome, if any. */
  #greeting?: { resolve(): void; reject(error: Error): void };

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
    let conn: ByteConn;
    try {
      conn = this.#options.dial
        ? await this.#options.dial(this.#address)
        : await Deno.connect({ ...this.#address, transport: "tcp" });
    } catch (err) {
      throw this.#dialFailed(`Cannot connect to ${this.address}: ${errorMessage(err)}`);
    }
    if (this.#closed) {
      conn.close();
      throw new ConnectionLostError(`Client for ${this.address} is closed`);
    }
    const connection: FramedConn = new FramedConn(conn, {
      maxFrameBytes: this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onFrame: (value) => this.#onFrame(value),
      onClose: ({ error }) => {
        const established = this.#connection === connection;
        if (established) this.#connection = undefined;
        // A drop right after connecting counts as a failure so redials back off.
        this.#nextDialAt = performance.now() + INITIAL_BACKOFF_MS;
        const reason = error ? `: ${error.message}` : "";
        const lost = new ConnectionLostError(`Connection to ${this.address} lost${reason}`);
        // Closed during the handshake: the dial fails with the reason and reports it itself.
        if (!established) return this.#greeting?.reject(lost);
        this.#failPending(lost);
        if (!this.#closed) this.#options.onDisconnect?.(lost);
      },
    });
    const hello = this.#options.hello;
    if (hello) {
      try {
        await this.#greet(connection, hello);
      } catch (err) {
        connection.close();
        const lost = this.#dialFailed(
          `Cannot connect to ${this.address}: ${errorMessage(err)}${this.#tlsHint(err)}`,
        );
        // An explicit refusal (bad token, not a member) will not go away by retrying.
        if (err instanceof HandshakeError) throw new HandshakeError(lost.message, err.refused);
        throw lost;
      }
      if (this.#closed) {
        connection.close();
        throw new ConnectionLostError(`Client for ${this.address} is closed`);
      }
    }
    this.#failures = 0;
    this.#nextDialAt = 0;
    this.#connection = connection;
    this.#options.onConnect?.(connection);
    return connection;
  }

  /** Sends the Hello and waits (bounded) for the Welcome; rejects with why it was refused. */
  #greet(connection: FramedConn, hello: Hello): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new HandshakeError(`No handshake answer within ${HANDSHAKE_TIMEOUT_MS} ms`)),
        HANDSHAKE_TIMEOUT_MS,
      );
      const settle = () => {
        clearTimeout(timer);
        this.#greeting = undefined;
      };
      this.#greeting = {
        resolve: () => (settle(), resolve()),
        reject: (error) => (settle(), reject(error)),
      };
      connection.send(hello, true);
    });
  }

  /**
   * A plain client that meets a TLS port reads the server's TLS alert (bytes 15 03 0x) as the
   * length of a frame; say what that means instead of only "frame too large".
   */
  #tlsHint(err: unknown): string {
    const length = /Frame of (\d+) bytes/.exec(errorMessage(err))?.[1];
    const tlsAlert = length !== undefined && Math.floor(Number(length) / 0x10000) === 0x1503;
    return tlsAlert && !this.#options.dial
      ? " (the server speaks TLS: give the cluster's CA, e.g. --ca or --credentials)"
      : "";
  }

  /** Counts a failed dial for the backoff, reports it, and returns the error to throw. */
  #dialFailed(message: string): ConnectionLostError {
    this.#failures++;
    const backoff = Math.min(
      INITIAL_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 16),
      this.#options.maxBackoffMs ?? 2000,
    );
    this.#nextDialAt = performance.now() + backoff;
    const error = new ConnectionLostError(message);
    this.#options.onDisconnect?.(error);
    return error;
  }

  #onFrame(frame: unknown): void {
    const greeting = this.#greeting;
    if (greeting) {
      try {
        parseAnswer(frame);
        greeting.resolve();
      } catch (error) {
        greeting.reject(asError(error));
      }
      return;
    }
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

/**
 * The rate-limit key of a handshake refusal: its kind, not its details. One noisy kind (a wiped
 * node redialing every few milliseconds) must not hide another (a node with another cluster's
 * data) for as long as it keeps going. The first two words with digits blanked name the kind
 * and keep the key space small even when a reason quotes what an attacker sent.
 */
export function refusalKey(reason: string): string {
  return "handshake:" + reason.replace(/[0-9]/g, "#").split(/\s+/, 2).join(" ").slice(0, 32);
}
