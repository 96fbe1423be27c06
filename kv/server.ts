/**
 * The Raft peer daemon: one RaftNode over DiskStorage, the KV state machine, the peer transport
 * and the native "kv" RPC on the peer port, and the Hono HTTP API. Any node accepts any request:
 * a follower forwards it to the leader over the peer connection and relays the answer.
 */
import type { HostPort } from "../net/host_port.ts";
import { Deadlines } from "../net/deadlines.ts";
import { PeerTransport } from "../net/transport.ts";
import { RemoteError, RpcServer } from "../net/rpc.ts";
import { DiskStorage } from "../persist/disk_storage.ts";
import { NodeStoppedError, NotLeaderError, ProposalDroppedError } from "../raft/errors.ts";
import { RaftNode, type RaftNodeConfig } from "../raft/node.ts";
import { type Message, validateMessage } from "../raft/types.ts";
import { encodeCommand } from "./commands.ts";
import { createHttpApp } from "./http.ts";
import { NodeMetrics } from "./node_metrics.ts";
import type { NodeReport } from "./node_status.ts";
import {
  handleKvRpc,
  InvalidRequestError,
  KV_RPC_METHOD,
  type KvLimits,
  type KvRpcParams,
  type KvRpcReply,
  type KvService,
  type KvWrite,
  STALE_PREFIX,
  TIMEOUT_PREFIX,
  TimeoutError,
  UNAVAILABLE_PREFIX,
  UnavailableError,
} from "./service.ts";
import type { ApplyResult } from "./state_machine.ts";
import { KvStateMachine } from "./state_machine.ts";
import { errorMessage } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";

/** Everything `raftmr serve` configures. */
export interface ServerConfig {
  id: number;
  peers: Map<number, HostPort>;
  dataDir: string;
  http: HostPort;
  raft: Partial<RaftNodeConfig>;
  limits: KvLimits;
  /** How long a request may wait for a leader or a commit before failing (ms). */
  requestTimeoutMs: number;
  maxFrameBytes?: number;
  log: (line: string) => void;
}

const LEADER_POLL_MS = 5;
/** How long a forwarded request waits for a dial to the leader before checking who leads. */
const DIAL_WAIT_MS = 50;

/** A running peer; start() brings it up, shutdown() takes it down cleanly. */
export class KvServer implements KvService {
  readonly #config: ServerConfig;
  readonly #storage: DiskStorage;
  readonly #machine: KvStateMachine;
  readonly #rpc: RpcServer;
  readonly #transport: PeerTransport<Message>;
  readonly #node: RaftNode;
  readonly #metrics: NodeMetrics;
  readonly #deadlines = new Deadlines();
  #http?: Deno.HttpServer;
  #stopping = false;
  #forwarded = 0;

  private constructor(config: ServerConfig, storage: DiskStorage, metrics: NodeMetrics) {
    this.#config = config;
    this.#storage = storage;
    this.#metrics = metrics;
    this.#machine = new KvStateMachine();
    this.#rpc = new RpcServer({ maxFrameBytes: config.maxFrameBytes, log: config.log });
    this.#transport = new PeerTransport<Message>({
      selfId: config.id,
      peers: config.peers,
      server: this.#rpc,
      maxFrameBytes: config.maxFrameBytes,
      callTimeoutMs: config.requestTimeoutMs,
      log: config.log,
      onMessages: (batch) => this.#receive(batch),
      onUnreachable: (id) => this.#node.reportUnreachable(id),
    });
    this.#node = new RaftNode({
      id: config.id,
      peers: [...config.peers.keys()],
      storage,
      stateMachine: this.#machine,
      send: (messages) => this.#transport.send(messages),
      config: config.raft,
      log: config.log,
      onLeaderChange: (leader, term) =>
        config.log(
          leader === 0
            ? `Term ${term}: no leader (election in progress)`
            : `Term ${term}: leader is node ${leader}${leader === config.id ? " (this node)" : ""}`,
        ),
    });
    this.#rpc.handle(KV_RPC_METHOD, (params) => this.#serveRpc(params));
    metrics.attach({
      node: this.#node,
      walBytes: () => storage.walBytes(),
      walAllocatedBytes: () => storage.walAllocatedBytes(),
      keys: () => this.#machine.size,
      forwardedRequests: () => this.#forwarded,
    });
  }

  /** Opens storage, starts Raft, and listens on the peer and HTTP addresses. */
  static async start(config: ServerConfig): Promise<KvServer> {
    const self = config.peers.get(config.id);
    if (!self) throw new RangeError(`--peers has no entry for --id ${config.id}`);
    const metrics = new NodeMetrics();
    const storage = await DiskStorage.open(config.dataDir, {
      peers: [...config.peers.keys()],
      log: config.log,
      onSync: (ms) => metrics.fsync.observe(ms / 1000),
    });
    const server = new KvServer(config, storage, metrics);
    try {
      server.#rpc.listen(self.hostname, self.port);
    } catch (err) {
      server.#transport.close();
      await storage.close();
      throw new Error(
        `Cannot listen for peers on ${self.hostname}:${self.port}: ${errorMessage(err)}`,
      );
    }
    server.#node.start();
    const app = createHttpApp(server, {
      maxKeyBytes: config.limits.maxKeyBytes,
      maxValueBytes: config.limits.maxValueBytes,
      onInternalError: (error) => config.log(`HTTP handler failed: ${errorMessage(error)}`),
    });
    try {
      server.#http = Deno.serve({
        hostname: config.http.hostname,
        port: config.http.port,
        onListen: () => {},
      }, app.fetch);
    } catch (err) {
      await server.shutdown();
      throw new Error(
        `Cannot serve HTTP on ${config.http.hostname}:${config.http.port}: ${errorMessage(err)}`,
      );
    }
    config.log(
      `Node ${config.id} serving peers on ${self.hostname}:${self.port}, ` +
        `HTTP on http://${config.http.hostname}:${config.http.port}, data in ${config.dataDir}`,
    );
    return server;
  }

  /** Stops accepting, fails what is in flight, flushes storage and releases every resource. */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await this.#http?.shutdown();
    await this.#rpc.close();
    this.#transport.close();
    await this.#node.stop();
    await this.#storage.close();
    this.#deadlines.close();
  }

  // --- KvService ------------------------------------------------------------------------------

  /** Replicates a write through the leader; resolves once applied. */
  async write(command: KvWrite): Promise<{ index: number; result: ApplyResult }> {
    const deadline = performance.now() + this.#config.requestTimeoutMs;
    // Set once a proposal may have been appended somewhere: from then on, running out of time
    // means "outcome unknown" (504), never "nothing happened" (503).
    let maybeApplied = false;
    while (true) {
      let leader: number;
      try {
        leader = await this.#awaitLeader(deadline);
      } catch (error) {
        throw maybeApplied ? this.#unknownOutcome(error) : error;
      }
      if (leader === this.#config.id) {
        try {
          const data = encodeCommand({ ...command, time: Date.now() });
          // A stalled disk or a lost quorum must not hold the client past its deadline.
          const { index, result } = await this.#deadlines.race(
            this.#node.propose(data),
            deadline,
            () => new TimeoutError("Write outcome unknown: not applied within the request timeout"),
          );
          return { index, result: result as ApplyResult };
        } catch (error) {
          // Leadership moved before the proposal was accepted: nothing was appended, retry.
          if (error instanceof NotLeaderError) continue;
          // Its fate is unknown; retrying is safe only when the session makes it exactly-once.
          if (error instanceof ProposalDroppedError && command.clientId !== undefined) {
            maybeApplied = true;
            continue;
          }
          throw maybeApplied ? this.#unknownOutcome(error) : this.#ambiguous(error);
        }
      }
      let reply;
      try {
        reply = await this.#forward(leader, { ...command, op: command.op }, deadline);
      } catch (error) {
        throw maybeApplied ? this.#unknownOutcome(error) : error;
      }
      if (reply === undefined) continue;
      if ("stale" in reply) return { index: 0, result: { status: "stale", error: reply.stale } };
      return { index: reply.index, result: replyToResult(reply) };
    }
  }

  /** Linearizable read (ReadIndex on the leader) or the local state when stale. */
  async read(
    key: string,
    options: { stale: boolean },
  ): Promise<{ value: Uint8Array | null; index: number }> {
    if (options.stale) {
      return { value: this.#machine.get(key), index: this.#machine.appliedIndex };
    }
    const deadline = performance.now() + this.#config.requestTimeoutMs;
    while (true) {
      const leader = await this.#awaitLeader(deadline);
      if (leader === this.#config.id) {
        try {
          await this.#deadlines.race(
            this.#node.readIndex(),
            deadline,
            () => new UnavailableError("Read timed out: leadership could not be confirmed"),
          );
        } catch (error) {
          if (error instanceof NotLeaderError) continue;
          if (error instanceof UnavailableError) throw error;
          // A read has no effect: failing it is always safe to retry.
          throw new UnavailableError(`Read failed: ${errorMessage(error)}`);
        }
        return { value: this.#machine.get(key), index: this.#machine.appliedIndex };
      }
      const reply = await this.#forward(leader, { op: "get", key }, deadline);
      if (reply === undefined) continue;
      if ("stale" in reply) throw new InvalidRequestError(reply.stale);
      return { value: reply.value ?? null, index: reply.index };
    }
  }

  /** JSON for /status. */
  status(): NodeReport {
    const raft = this.#node.status();
    return {
      ...raft,
      walBytes: this.#storage.walBytes(),
      walAllocatedBytes: this.#storage.walAllocatedBytes(),
      counters: this.#node.metrics,
      keys: this.#machine.size,
      sessions: this.#machine.sessionCount,
      peers: Object.fromEntries(
        [...this.#config.peers].map(([id, a]) => [id, `${a.hostname}:${a.port}`]),
      ),
      http: `${this.#config.http.hostname}:${this.#config.http.port}`,
    };
  }

  /** Prometheus text for /metrics (kv/node_metrics.ts declares what it holds). */
  metricsText(): string {
    return this.#metrics.registry.render();
  }

  /** Whether a leader is known (GET /healthz). */
  leaderKnown(): boolean {
    return this.#node.leader !== 0;
  }

  // --- internals ------------------------------------------------------------------------------

  #receive(batch: unknown[]): void {
    for (const raw of batch) {
      let message: Message;
      try {
        message = validateMessage(raw);
      } catch (error) {
        this.#config.log(`Dropped a malformed Raft message: ${errorMessage(error)}`);
        continue;
      }
      if (message.to !== this.#config.id || !this.#config.peers.has(message.from)) continue;
      this.#node.step(message);
    }
  }

  /** Waits (bounded) until a leader is known; throws UnavailableError at the deadline. */
  async #awaitLeader(deadline: number): Promise<number> {
    while (true) {
      if (this.#stopping) throw new UnavailableError("Node is shutting down");
      const leader = this.#node.leader;
      if (leader !== 0) return leader;
      if (performance.now() >= deadline) {
        throw new UnavailableError(
          "No leader is known: an election is in progress or this node is cut off",
        );
      }
      await sleep(LEADER_POLL_MS);
    }
  }

  /**
   * Sends a request to the leader. Returns undefined when it should be retried (the leader
   * could not be reached before sending, or is no longer leader), `{ stale }` when the leader
   * refused an outdated (client id, seq); throws InvalidRequestError when the leader refused the
   * request for good and TimeoutError when the outcome is unknown.
   */
  async #forward(
    leader: number,
    params: KvRpcParams,
    deadline: number,
  ): Promise<KvRpcReply | { stale: string } | undefined> {
    const client = this.#transport.client(leader);
    if (!client) throw new UnavailableError(`Leader ${leader} is not in --peers`);
    this.#forwarded++;
    if (!client.connected) {
      // A dial may sit out a redial backoff (up to a second) or the kernel's SYN retries on a
      // leader that is gone; meanwhile a new leader may be elected. So wait for it only
      // briefly, then let the caller look at who leads now (the dial goes on regardless).
      try {
        await this.#deadlines.race(
          client.connect(),
          Math.min(deadline, performance.now() + DIAL_WAIT_MS),
          () => new UnavailableError(`Leader ${leader} is unreachable`),
        );
      } catch (error) {
        if (!(error instanceof UnavailableError)) {
          await sleep(LEADER_POLL_MS * 4);
        }
        if (performance.now() >= deadline) {
          throw new UnavailableError(`Leader ${leader} is unreachable`);
        }
        return undefined;
      }
    }
    const timeoutMs = Math.max(1, deadline - performance.now());
    try {
      return await client.call<KvRpcReply>(KV_RPC_METHOD, { ...params, forwarded: true }, {
        timeoutMs,
      });
    } catch (error) {
      const message = errorMessage(error);
      if (message.startsWith(UNAVAILABLE_PREFIX)) {
        // The leader stepped down before handling it: nothing happened there, try again.
        await sleep(LEADER_POLL_MS * 4);
        if (performance.now() >= deadline) throw new UnavailableError(message);
        return undefined;
      }
      // The leader answered with a definitive refusal: nothing was applied, and retrying (or
      // reporting "outcome unknown") would be wrong.
      if (error instanceof RemoteError && message.startsWith(STALE_PREFIX)) {
        return { stale: message.slice(STALE_PREFIX.length).trimStart() };
      }
      if (error instanceof RemoteError && !message.startsWith(TIMEOUT_PREFIX)) {
        throw new InvalidRequestError(message);
      }
      if (params.op === "get") {
        if (performance.now() >= deadline) throw new UnavailableError(`Read timed out: ${message}`);
        return undefined;
      }
      throw new TimeoutError(`Write outcome unknown: ${message}`);
    }
  }

  async #serveRpc(raw: unknown): Promise<KvRpcReply> {
    const forwarded = typeof raw === "object" && raw !== null &&
      (raw as { forwarded?: unknown }).forwarded === true;
    if (forwarded && this.#node.role !== "leader") {
      // Never forward twice: the original node retries against the new leader.
      throw new Error(`${UNAVAILABLE_PREFIX} node ${this.#config.id} is not the leader`);
    }
    return await handleKvRpc(this, raw, {
      limits: this.#config.limits,
      leaderHint: () => {
        const leader = this.#node.leader;
        const address = this.#config.peers.get(leader);
        return address ? `${address.hostname}:${address.port}` : undefined;
      },
    });
  }

  #ambiguous(error: unknown): Error {
    // Stopped before proposing: nothing happened. Anything else came after a proposal.
    if (error instanceof NodeStoppedError) return new UnavailableError("Node is shutting down");
    return this.#unknownOutcome(error);
  }

  #unknownOutcome(error: unknown): Error {
    if (error instanceof TimeoutError) return error;
    return new TimeoutError(`Outcome unknown: ${errorMessage(error)}`);
  }
}

function replyToResult(reply: KvRpcReply): ApplyResult {
  if (!reply.ok) return { status: "mismatch", current: reply.current ?? null };
  return reply.existed === undefined ? { status: "ok" } : { status: "ok", existed: reply.existed };
}
