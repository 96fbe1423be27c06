/**
 * Peer-to-peer transport for Raft messages. Each node dials every other peer at its address
 * from --peers (at start, and again whenever a send finds no connection) and sends batches of
 * messages as one-way RPC notifications; incoming batches arrive on the node's own RpcServer.
 * Peers are identified by the `from` id inside every message, never by source address, so
 * proxies and NAT may sit in between.
 *
 * A batch sent while a dial is under way waits for it (a few, newest kept): dropping it would
 * cost a vote request a whole election timeout, because followers never talk to each other
 * until an election and so meet a cold connection exactly then. A batch for a peer that cannot
 * be reached is dropped and reported: Raft retries on its own.
 */
import type { HostPort } from "./host_port.ts";
import type { ByteConn } from "./framed_conn.ts";
import { type Hello, peerHello } from "./handshake.ts";
import { RpcClient, type RpcServer } from "./rpc.ts";

/** The RPC method that carries a batch of Raft messages. */
export const RAFT_METHOD = "raft";

/** Anything with a destination peer id; the transport does not look further. */
export interface Addressed {
  to: number;
}

/** Options for a PeerTransport. */
export interface PeerTransportOptions {
  selfId: number;
  /** Every peer's address, including this node's own (which is skipped). */
  peers: Map<number, HostPort>;
  server: RpcServer;
  /** Called with each received batch (still `unknown`: the receiver validates it). */
  onMessages: (batch: unknown[]) => void;
  /** Called when a message to `id` could not be sent. */
  onUnreachable?: (id: number) => void;
  /** Called with one line per event (peer lost, peer found). */
  /** Logs an event; `fields` carry its details (peer id, ...) for structured logs. */
  log?: (line: string, fields?: Record<string, unknown>) => void;
  maxFrameBytes?: number;
  /** Timeout for forwarded calls (ms). */
  callTimeoutMs?: number;
  /**
   * Opens the byte stream to a peer (default: plain TCP); a secure node passes a TLS dialer
   * that presents its certificate. Every connection starts with this node's peer Hello.
   */
  dial?: (address: { hostname: string; port: number }) => Promise<ByteConn>;
  /**
   * The Hello every connection starts with (default: peerHello(selfId)). The same object is
   * sent on every dial, so a field updated later (a cluster id learned) is what later dials say.
   */
  hello?: Hello;
}

/** Batches kept per peer while its connection is being dialed; older ones are dropped. */
const MAX_WAITING_BATCHES = 16;

/** How long a removed peer stays reachable (the Raft leader feeds it 10 election timeouts). */
const DEPARTING_GRACE_MS = 30_000;

/** Sends Raft messages to peers and hands received ones to the node. */
export class PeerTransport<M extends Addressed> {
  readonly #options: PeerTransportOptions;
  readonly #clients = new Map<number, RpcClient>();
  readonly #reachable = new Map<number, boolean>();
  /** Batches waiting for a dial in progress, by peer. */
  readonly #waiting = new Map<number, M[][]>();
  /**
   * Peers no longer members, still reachable for a grace period: the leader tells a removed
   * node that it was removed, and calls in flight (a request forwarded to a leader that just
   * removed itself) get their answer.
   */
  readonly #departing = new Map<
    number,
    { client: RpcClient; timer: ReturnType<typeof setTimeout> }
  >();

  constructor(options: PeerTransportOptions) {
    this.#options = options;
    // Raft messages are accepted from authenticated peers only (see net/handshake.ts).
    options.server.handle(RAFT_METHOD, (params) => {
      if (!Array.isArray(params)) throw new TypeError("Raft batch must be an array");
      options.onMessages(params);
    }, "peer");
    for (const [id, address] of options.peers) this.#addClient(id, address);
  }

  #addClient(id: number, address: HostPort): void {
    if (id === this.#options.selfId) return;
    const client = new RpcClient(address, {
      maxFrameBytes: this.#options.maxFrameBytes,
      timeoutMs: this.#options.callTimeoutMs,
      maxBackoffMs: 1000,
      hello: this.#options.hello ?? peerHello(this.#options.selfId),
      dial: this.#options.dial,
      onConnect: () => this.#setReachable(id, true),
      onDisconnect: (error) => this.#setReachable(id, false, error?.message),
    });
    this.#clients.set(id, client);
    // Connections are ready before the first election needs them.
    client.connect().catch(() => {});
  }

  /**
   * Follows a membership change: dials peers that are new (or moved to another address) and
   * closes and forgets those no longer listed. This node's own entry is ignored.
   */
  updatePeers(peers: ReadonlyMap<number, HostPort>): void {
    for (const [id, client] of [...this.#clients]) {
      const want = peers.get(id);
      if (want && `${want.hostname}:${want.port}` === client.address) continue;
      this.#clients.delete(id);
      this.#retire(id, client);
      this.#reachable.delete(id);
      this.#waiting.delete(id);
      if (!want) this.#options.log?.(`Peer ${id} forgotten: no longer a member`);
    }
    for (const [id, address] of peers) {
      if (!this.#clients.has(id)) this.#addClient(id, address);
    }
  }

  #retire(id: number, client: RpcClient): void {
    const old = this.#departing.get(id);
    if (old) {
      clearTimeout(old.timer);
      old.client.close();
    }
    const timer = setTimeout(() => {
      this.#departing.delete(id);
      client.close();
    }, DEPARTING_GRACE_MS);
    this.#departing.set(id, { client, timer });
  }

  /** The ids of the peers this transport dials. */
  peerIds(): number[] {
    return [...this.#clients.keys()];
  }

  /** Sends messages, one notification per destination; unsendable ones are reported. */
  send(messages: M[]): void {
    if (messages.length === 0) return;
    if (messages.length === 1) {
      this.#sendBatch(messages[0].to, messages);
      return;
    }
    const byPeer = new Map<number, M[]>();
    for (const message of messages) {
      const batch = byPeer.get(message.to);
      if (batch) batch.push(message);
      else byPeer.set(message.to, [message]);
    }
    for (const [to, batch] of byPeer) this.#sendBatch(to, batch);
  }

  /** The RPC client for a peer, for forwarding client requests to the leader. */
  client(id: number): RpcClient | undefined {
    return this.#clients.get(id) ?? this.#departing.get(id)?.client;
  }

  /** Whether the last connection attempt to a peer succeeded. */
  reachable(id: number): boolean {
    return this.#reachable.get(id) ?? false;
  }

  /** Closes every outgoing connection. */
  close(): void {
    this.#waiting.clear();
    for (const { client, timer } of this.#departing.values()) {
      clearTimeout(timer);
      client.close();
    }
    this.#departing.clear();
    for (const client of this.#clients.values()) client.close();
  }

  #sendBatch(to: number, batch: M[]): void {
    const client = this.client(to);
    if (!client) {
      this.#options.onUnreachable?.(to);
      return;
    }
    const waiting = this.#waiting.get(to);
    if (waiting) {
      // Behind what already waits: the dial it waits for settles them all, in order.
      waiting.push(batch);
      if (waiting.length > MAX_WAITING_BATCHES) waiting.shift();
      return;
    }
    // A batch is one Ready's messages to that peer: nothing else would join it, and an append
    // or an ack is on the commit path, so it goes out without waiting for the loop's pass.
    if (client.notify(RAFT_METHOD, batch, true)) return;
    if (!client.dialing) {
      this.#options.onUnreachable?.(to);
      return;
    }
    this.#waiting.set(to, [batch]);
    // Settled by the dial itself (not by the connect/disconnect callbacks, which may run
    // before the client has forgotten a failed dial): the wait always ends one way or another.
    client.connect().then(() => this.#flushWaiting(to), () => this.#dropWaiting(to));
  }

  #flushWaiting(id: number): void {
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    for (const batch of waiting) this.#sendBatch(id, batch);
  }

  #dropWaiting(id: number): void {
    if (!this.#waiting.delete(id)) return;
    this.#options.onUnreachable?.(id);
  }

  #setReachable(id: number, reachable: boolean, reason?: string): void {
    const before = this.#reachable.get(id);
    this.#reachable.set(id, reachable);
    if (before === reachable) return;
    const address = this.#clients.get(id)?.address;
    if (reachable) this.#options.log?.(`Peer ${id} found at ${address}`, { peer: id, address });
    else if (before !== undefined) {
      this.#options.log?.(`Peer ${id} lost: ${reason ?? "closed"}`, { peer: id, level: "warn" });
    }
  }
}
