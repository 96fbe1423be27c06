/**
 * The Raft peer daemon: one RaftNode over DiskStorage, the KV state machine, the peer transport
 * and the native "kv" RPC on the peer port, and the Hono HTTP API. Any node accepts any request:
 * a follower forwards it to the leader over the peer connection and relays the answer.
 */
import type { HostPort } from "../net/host_port.ts";
import { Deadlines } from "../net/deadlines.ts";
import { PeerTransport } from "../net/transport.ts";
import { RpcServer } from "../net/rpc.ts";
import { setPartialFrameBudget } from "../net/byte_budget.ts";
import { defaultConnectionCap, type ListenerLimits } from "../net/conn_gate.ts";
import { registerListenerMetrics } from "../net/listener_metrics.ts";
import { dialTls } from "../net/peer_tls.ts";
import { requireBearer } from "../net/bearer_auth.ts";
import { type HttpListener, serveHttp } from "../net/http_listener.ts";
import type { NodeSecurity } from "../net/security.ts";
import { DEFAULT_OPEN_PATHS } from "./security_flags.ts";
import { DiskStorage } from "../persist/disk_storage.ts";
import { NodeStoppedError, NotLeaderError, ProposalDroppedError } from "../raft/errors.ts";
import { RaftNode, type RaftNodeConfig } from "../raft/node.ts";
import { type Message, validateMessage } from "../raft/types.ts";
import { encodeCommand } from "./commands.ts";
import { createHttpApp } from "./http.ts";
import { ClusterIdentity } from "./cluster_identity.ts";
import { MEMBERS_RPC_METHOD } from "./members_api.ts";
import { addMembersRoutes } from "./members_http.ts";
import { MembershipService } from "./membership_service.ts";
import {
  peerAddresses,
  startupRefusal,
  type StoredMembership,
  storedMembership,
} from "./member_startup.ts";
import { clusterMismatch } from "../net/cluster_match.ts";
import { type Hello, peerHello } from "../net/handshake.ts";
import { markRemoved, readRemoved, removedMessage } from "./removal_marker.ts";
import { NodeMetrics } from "./node_metrics.ts";
import type { NodeReport } from "./node_status.ts";
import {
  advertisedHttp,
  PeerProber,
  type PeerStatusReply,
  STATUS_RPC_METHOD,
} from "./peer_prober.ts";
import { BUILD_VERSION } from "../status/process_metrics.ts";
import {
  handleKvRpc,
  KV_RPC_METHOD,
  type KvOps,
  type KvRpcParams,
  type KvRpcReply,
  parseKvRpcReply,
} from "./protocol.ts";
import {
  kvErrorFromCode,
  type KvLimits,
  type KvService,
  type KvWrite,
  TimeoutError,
  UnavailableError,
} from "./service.ts";
import type { ApplyResult } from "./state_machine.ts";
import { KvStateMachine } from "./state_machine.ts";
import { ServiceDispatcher } from "./service_dispatcher.ts";
import { JobStateMachine } from "../mr/job_state_machine.ts";
import { JobPeer } from "../mr/job_peer.ts";
import { mountJobRoutes } from "../mr/job_http.ts";
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
  /**
   * Join an existing cluster (`serve --join`): start with no configuration, never campaign, and
   * wait for the leader that added this node to reach it.
   */
  join?: boolean;
  /** Logs an event; `fields` carry its details (term, leader, ...) for structured logs. */
  log: (line: string, fields?: Record<string, unknown>) => void;
  /** Peer TLS, client tokens, HTTPS (net/security.ts); absent: an insecure node. */
  security?: NodeSecurity;
  /** HTTP paths served without a token when tokens are configured. */
  openPaths?: ReadonlySet<string>;
  /** Connection caps and HTTP timeouts (default cap: from the open-file limit). */
  listenerLimits?: ListenerLimits;
  /** Bound on partially received frames, all peer connections together (bytes). */
  frameBudgetBytes?: number;
}

const LEADER_POLL_MS = 5;
/** How long a forwarded request waits for a dial to the leader before checking who leads. */
const DIAL_WAIT_MS = 50;

/** A running peer; start() brings it up, shutdown() takes it down cleanly. */
export class KvServer implements KvService {
  readonly #config: ServerConfig;
  readonly #storage: DiskStorage;
  readonly #machine: KvStateMachine;
  /** The replicated MapReduce job table, beside the KV store on the same log. */
  readonly #jobs = new JobStateMachine();
  /** The MapReduce job service (mr/job_peer.ts): worker RPCs and /v1/mr/jobs. */
  readonly #jobPeer: JobPeer;
  readonly #rpc: RpcServer;
  readonly #transport: PeerTransport<Message>;
  readonly #node: RaftNode;
  readonly #metrics: NodeMetrics;
  readonly #prober: PeerProber;
  readonly #startedAt = performance.now();
  readonly #deadlines = new Deadlines();
  readonly #members: MembershipService;
  readonly #identity: ClusterIdentity;
  /** Every peer's address as the transport dials it: --peers plus the configuration's. */
  #addresses: Map<number, HostPort>;
  #http?: HttpListener;
  #httpRefused = 0;
  #stopping = false;
  #markedRemoved = false;
  /** This node's peer Hello, cluster identity included (see the constructor). */
  readonly #hello: Hello;
  #forwarded = 0;
  /** What a forwarded request runs on: this node as leader, never forwarding again. */
  readonly #leaderSide: KvOps = {
    write: (command) => this.#write(command, false),
    read: (key, options) => this.#read(key, options, false),
  };

  private constructor(
    config: ServerConfig,
    storage: DiskStorage,
    metrics: NodeMetrics,
    addresses: Map<number, HostPort>,
    stored: StoredMembership,
  ) {
    this.#config = config;
    // What this node says of itself in every peer Hello; the same object is sent on every
    // dial, so the cluster id learned later and the end of "fresh" reach later dials.
    this.#hello = {
      ...peerHello(config.id),
      joining: config.join === true,
      fresh: !stored.hasState,
    };
    if (stored.conf?.clusterId) this.#hello.clusterId = stored.conf.clusterId;
    this.#storage = storage;
    this.#metrics = metrics;
    this.#addresses = addresses;
    this.#machine = new KvStateMachine();
    const security = config.security;
    const peerTls = security?.peerTls;
    if (config.frameBudgetBytes !== undefined) setPartialFrameBudget(config.frameBudgetBytes);
    this.#rpc = new RpcServer({
      maxFrameBytes: config.maxFrameBytes,
      log: config.log,
      name: "peer",
      tls: peerTls,
      maxConnections: config.listenerLimits?.maxConnections ?? defaultConnectionCap(),
      handshake: {
        selfId: config.id,
        // Members change at run time: the configuration's ids (and --peers) are the peers.
        isPeer: (id) => this.#addresses.has(id),
        // The cluster identity (net/cluster_match.ts): another cluster's node, or an empty
        // data directory not started with --join, is refused and logged with both ids.
        checkPeer: (hello) => this.#checkPeer(hello),
        requirePeerCertificate: peerTls !== undefined,
        // A secure node without a token file admits no native client at all.
        tokenDigests: security?.tokenDigests ?? (peerTls ? [] : undefined),
      },
    });
    this.#transport = new PeerTransport<Message>({
      dial: peerTls ? (address) => dialTls(address, peerTls) : undefined,
      selfId: config.id,
      peers: addresses,
      server: this.#rpc,
      maxFrameBytes: config.maxFrameBytes,
      callTimeoutMs: config.requestTimeoutMs,
      log: config.log,
      hello: this.#hello,
      onMessages: (batch) => this.#receive(batch),
      onUnreachable: (id) => this.#node.reportUnreachable(id),
    });
    this.#node = new RaftNode({
      id: config.id,
      peers: config.join ? [] : [...config.peers.keys()],
      storage,
      stateMachine: new ServiceDispatcher(this.#machine, this.#jobs),
      send: (messages) => this.#transport.send(messages),
      config: config.raft,
      log: config.log,
      onLeaderChange: (leader, term) => {
        config.log(
          leader === 0
            ? `Term ${term}: no leader (election in progress)`
            : `Term ${term}: leader is node ${leader}${leader === config.id ? " (this node)" : ""}`,
          { term, leader },
        );
        // A term means this node took part in an election: its data directory is no longer
        // empty, whatever it held at start.
        if (term > 0) this.#hello.fresh = false;
        if (leader === config.id) this.#identity.onLeader();
      },
      onMembershipChange: (conf) => {
        if (conf.clusterId) this.#hello.clusterId = conf.clusterId;
        this.#addresses = peerAddresses(conf, config.peers);
        this.#transport.updatePeers(this.#addresses);
        if ((conf.removed ?? []).includes(config.id) && !this.#markedRemoved) {
          this.#markedRemoved = true;
          const index = this.#node.membership()?.confIndex ?? 0;
          markRemoved(config.dataDir, { id: config.id, clusterId: conf.clusterId, index }).catch(
            (error) => config.log(`Cannot record the removal: ${errorMessage(error)}`),
          );
        }
      },
    });
    this.#members = new MembershipService({
      id: config.id,
      node: this.#node,
      client: (id) => this.#transport.client(id),
      addressOf: (id) => {
        const a = this.#addresses.get(id);
        return a ? `${a.hostname}:${a.port}` : this.#node.membership()?.conf.addrs?.[id] ?? "";
      },
      requestTimeoutMs: config.requestTimeoutMs,
      stopping: () => this.#stopping,
      log: config.log,
    });
    this.#identity = new ClusterIdentity({
      node: this.#node,
      peers: config.peers,
      log: config.log,
      stopping: () => this.#stopping,
    });
    this.#rpc.handle(KV_RPC_METHOD, (params) => this.#serveRpc(params));
    this.#rpc.handle(MEMBERS_RPC_METHOD, (params) => this.#members.serveRpc(params));
    this.#rpc.handle(STATUS_RPC_METHOD, () => this.#peerStatus());
    this.#jobPeer = new JobPeer({
      table: this.#jobs,
      rpc: this.#rpc,
      role: () => {
        const s = this.#node.status();
        return {
          leader: s.leader,
          term: s.term,
          isLeader: s.role === "leader" && !this.#stopping,
          applied: s.applied,
          lastIndex: s.lastIndex,
        };
      },
      propose: (data) => this.#node.propose(data),
      client: (id) => this.#transport.client(id),
      peerAddress: (id) => {
        const a = this.#addresses.get(id);
        return a ? `${a.hostname}:${a.port}` : undefined;
      },
      requestTimeoutMs: config.requestTimeoutMs,
      scratchDir: `${config.dataDir}/mr-scratch`,
      log: config.log,
    });
    this.#prober = new PeerProber({
      selfId: config.id,
      peers: () => this.#addresses,
      client: (id) => this.#transport.client(id),
      onRoundTrip: (peer, seconds) => metrics.peerRtt.observe(seconds, { to: String(peer) }),
    });
    metrics.attach({
      node: this.#node,
      walBytes: () => storage.walBytes(),
      walAllocatedBytes: () => storage.walAllocatedBytes(),
      keys: () => this.#machine.size,
      forwardedRequests: () => this.#forwarded,
      peerReachable: () => this.#prober.reachability(),
    });
    registerListenerMetrics(metrics.registry, {
      gates: () => [this.#rpc.gate, ...(this.#http ? [this.#http.gate] : [])],
      httpUnauthorized: () => this.#httpRefused,
      httpTimeouts: () => this.#http?.timedOut ?? 0,
    });
  }

  /** Opens storage, starts Raft, and listens on the peer and HTTP addresses. */
  static async start(config: ServerConfig): Promise<KvServer> {
    const self = config.peers.get(config.id);
    if (!self) throw new RangeError(`--peers has no entry for --id ${config.id}`);
    const metrics = new NodeMetrics();
    const removed = await readRemoved(config.dataDir);
    if (removed) throw new Error(removedMessage(removed));
    const storage = await DiskStorage.open(config.dataDir, {
      peers: config.join ? [] : [...config.peers.keys()],
      log: config.log,
      onSync: (ms) => metrics.fsync.observe(ms / 1000),
      onSnapshotSave: (ms) => metrics.snapshotSave.observe(ms / 1000),
    });
    const stored = storedMembership(storage);
    const refusal = startupRefusal(config.id, stored, config.peers, config.join === true);
    if (refusal) {
      await storage.close();
      throw new Error(refusal);
    }
    // The peers dialed and admitted at start are those of the configuration the core puts in
    // force, the newest in the log: with only the committed one, a node killed before it saved
    // a new commit index and restarted with `--peers 3=itself` refused its own cluster for good.
    const inForce = storedMembership(storage, { uncommitted: true }).conf ?? stored.conf;
    const server = new KvServer(
      config,
      storage,
      metrics,
      peerAddresses(inForce, config.peers),
      stored,
    );
    try {
      await server.#rpc.open(self.hostname, self.port);
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
      onInternalError: (error) =>
        config.log(`HTTP handler failed: ${errorMessage(error)}`, { level: "error" }),
    });
    mountJobRoutes(app, server.#jobPeer);
    server.#jobPeer.start();
    addMembersRoutes(
      app,
      server.#members,
      (error) => config.log(`HTTP handler failed: ${errorMessage(error)}`, { level: "error" }),
    );
    const tokenDigests = config.security?.tokenDigests;
    const handler = tokenDigests
      ? requireBearer(app.fetch, {
        tokenDigests,
        openPaths: config.openPaths ?? new Set(DEFAULT_OPEN_PATHS),
        onRefused: () => server.#httpRefused++,
      })
      : app.fetch;
    try {
      server.#http = serveHttp({
        hostname: config.http.hostname,
        port: config.http.port,
        handler,
        tls: config.security?.httpTls,
        maxConnections: config.listenerLimits?.maxConnections ?? defaultConnectionCap(),
        headerTimeoutMs: config.listenerLimits?.headerTimeoutMs,
        idleTimeoutMs: config.listenerLimits?.idleTimeoutMs,
        log: config.log,
      });
    } catch (err) {
      await server.shutdown();
      throw new Error(
        `Cannot serve HTTP on ${config.http.hostname}:${config.http.port}: ${errorMessage(err)}`,
      );
    }
    server.#prober.start();
    const scheme = config.security?.httpTls ? "https" : "http";
    config.log(
      `Node ${config.id} serving peers on ${self.hostname}:${self.port}, ` +
        `HTTP on ${scheme}://${config.http.hostname}:${config.http.port}, data in ${config.dataDir}`,
      {
        peerAddress: `${self.hostname}:${self.port}`,
        httpAddress: `${config.http.hostname}:${config.http.port}`,
        dataDir: config.dataDir,
      },
    );
    if (!config.security?.peerTls) {
      config.log("Peer port is insecure: anyone who can reach it can act as a peer");
    }
    return server;
  }

  /** Why a peer's Hello must be refused for its cluster identity, or undefined to admit it. */
  #checkPeer(hello: Hello): string | undefined {
    const status = this.#node.status();
    const local = {
      clusterId: this.#node.membership()?.conf.clusterId ?? this.#hello.clusterId,
      joining: this.#hello.joining === true,
      fresh: status.term === 0 && status.lastIndex === 0,
    };
    const remote = {
      clusterId: hello.clusterId,
      joining: hello.joining === true,
      fresh: hello.fresh === true,
    };
    return clusterMismatch(local, remote, hello.id ?? 0);
  }

  /**
   * Hands leadership to the most up-to-date voter if this node leads (as etcd does on stop), so
   * that stopping it costs the cluster no election timeout; resolves when another node leads or
   * the transfer was abandoned (after an election timeout). A no-op on followers.
   */
  async handOverLeadership(): Promise<void> {
    if (this.#stopping || this.#node.role !== "leader") return;
    try {
      const leader = await this.#node.transferLeadership(0);
      this.#config.log(`Handed leadership to node ${leader} before stopping`);
    } catch (error) {
      this.#config.log(`Stopping without handing over leadership: ${errorMessage(error)}`);
    }
  }

  /** Stops accepting, fails what is in flight, flushes storage and releases every resource. */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#prober.stop();
    this.#jobPeer.close();
    await this.#http?.shutdown();
    await this.#rpc.close();
    this.#transport.close();
    await this.#node.stop();
    await this.#storage.close();
    this.#deadlines.close();
  }

  // --- KvService ------------------------------------------------------------------------------

  /** Replicates a write through the leader; resolves once applied. */
  write(command: KvWrite): Promise<{ index: number; result: ApplyResult }> {
    return this.#write(command, true);
  }

  /**
   * Proposes a write here when this node leads, or (when `forward`) sends it to the leader.
   * Without `forward` (a request a follower forwarded) it never leaves this node: the follower
   * retries against whoever leads next.
   */
  async #write(
    command: KvWrite,
    forward: boolean,
  ): Promise<{ index: number; result: ApplyResult }> {
    const deadline = performance.now() + this.#config.requestTimeoutMs;
    // Set once a proposal may have been appended somewhere: from then on, running out of time
    // means "outcome unknown" (504), never "nothing happened" (503).
    let maybeApplied = false;
    while (true) {
      let leader: number;
      try {
        leader = await this.#route(deadline, forward);
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
          // While a leadership transfer pauses proposals this node still leads: wait a little.
          if (error instanceof NotLeaderError) {
            if (this.#node.leader === this.#config.id) await sleep(LEADER_POLL_MS);
            continue;
          }
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
        reply = await this.#forward(leader, { ...command, forwarded: true }, "write", deadline);
      } catch (error) {
        throw maybeApplied ? this.#unknownOutcome(error) : error;
      }
      if (reply === undefined) continue;
      return { index: reply.index, result: reply.result };
    }
  }

  /** Linearizable read (ReadIndex on the leader) or the local state when stale. */
  read(
    key: string,
    options: { stale: boolean },
  ): Promise<{ value: Uint8Array | null; index: number }> {
    return this.#read(key, options, true);
  }

  /** Reads here when this node leads or `stale` is set, else (when `forward`) at the leader. */
  async #read(
    key: string,
    options: { stale: boolean },
    forward: boolean,
  ): Promise<{ value: Uint8Array | null; index: number }> {
    if (options.stale) {
      return { value: this.#machine.get(key), index: this.#machine.appliedIndex };
    }
    const deadline = performance.now() + this.#config.requestTimeoutMs;
    while (true) {
      const leader = await this.#route(deadline, forward);
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
      const reply = await this.#forward(leader, { op: "get", key }, "read", deadline);
      if (reply === undefined) continue;
      return { value: reply.value, index: reply.index };
    }
  }

  /** JSON for /status. */
  status(): NodeReport {
    const raft = this.#node.status();
    const self = this.#config.peers.get(this.#config.id)!;
    return {
      ...raft,
      walBytes: this.#storage.walBytes(),
      walAllocatedBytes: this.#storage.walAllocatedBytes(),
      counters: this.#node.metrics,
      keys: this.#machine.size,
      sessions: this.#machine.sessionCount,
      peers: Object.fromEntries(
        [...this.#addresses].map(([id, a]) => [id, `${a.hostname}:${a.port}`]),
      ),
      http: `${this.#config.http.hostname}:${this.#config.http.port}`,
      members: this.#prober.members({
        id: raft.id,
        peer: `${self.hostname}:${self.port}`,
        http: this.#advertisedHttp(),
        state: "self",
        role: raft.role,
        term: raft.term,
        commit: raft.commit,
        applied: raft.applied,
      }),
      version: BUILD_VERSION,
      uptimeMs: Math.round(performance.now() - this.#startedAt),
      jobs: this.#jobPeer.views(),
    };
  }

  /** What this node answers to a peer's status probe (kv/peer_prober.ts). */
  #peerStatus(): PeerStatusReply {
    const s = this.#node.status();
    return {
      id: s.id,
      http: this.#advertisedHttp(),
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: s.applied,
    };
  }

  #advertisedHttp(): string {
    return advertisedHttp(this.#config.http, this.#config.peers.get(this.#config.id)!);
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

  /**
   * The node a request goes to now. When it may be forwarded, waits (bounded) until a leader is
   * known; otherwise this node must lead, and UnavailableError says at once that it does not.
   */
  #route(deadline: number, forward: boolean): Promise<number> {
    if (forward) return this.#awaitLeader(deadline);
    if (this.#stopping) return Promise.reject(new UnavailableError("Node is shutting down"));
    if (this.#node.role !== "leader") {
      return Promise.reject(new UnavailableError(`Node ${this.#config.id} is not the leader`));
    }
    return Promise.resolve(this.#config.id);
  }

  #receive(batch: unknown[]): void {
    for (const raw of batch) {
      let message: Message;
      try {
        message = validateMessage(raw);
      } catch (error) {
        this.#config.log(`Dropped a malformed Raft message: ${errorMessage(error)}`, {
          level: "warn",
        });
        continue;
      }
      // Any sender id: the core itself ignores votes from non-members, and a leader that added
      // this node may not be in its --peers.
      if (message.to !== this.#config.id) continue;
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
   * Sends a request to the leader and returns its reply of kind `kind`. Returns undefined when it
   * should be retried (the leader could not be reached before sending, or is no longer leader);
   * throws the leader's refusal as its KvError, and TimeoutError when a write's outcome is
   * unknown.
   */
  async #forward<K extends "read" | "write">(
    leader: number,
    params: KvRpcParams,
    kind: K,
    deadline: number,
  ): Promise<Extract<KvRpcReply, { kind: K }> | undefined> {
    const client = this.#transport.client(leader);
    if (!client) throw new UnavailableError(`Leader ${leader} has no known address`);
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
    let reply: KvRpcReply;
    try {
      reply = parseKvRpcReply(
        await client.call(KV_RPC_METHOD, params, { timeoutMs }),
        kind,
      );
    } catch (error) {
      // No typed answer (a timeout, a lost connection, a failure the leader did not plan for):
      // the leader may have acted on a write.
      return this.#unanswered(kind, errorMessage(error), deadline);
    }
    if (reply.kind !== "error") return reply as Extract<KvRpcReply, { kind: K }>;
    switch (reply.code) {
      case "unavailable":
        // The leader stepped down before handling it: nothing happened there, try again.
        await sleep(LEADER_POLL_MS * 4);
        if (performance.now() >= deadline) throw new UnavailableError(reply.message);
        return undefined;
      case "timeout":
        return this.#unanswered(kind, reply.message, deadline);
      default:
        // A definitive refusal: nothing was applied, and retrying (or reporting "outcome
        // unknown") would be wrong.
        throw kvErrorFromCode(reply.code, reply.message);
    }
  }

  /** A forwarded read is retried until the deadline; a forwarded write's outcome is unknown. */
  #unanswered(kind: "read" | "write", message: string, deadline: number): undefined {
    if (kind === "write") throw new TimeoutError(`Write outcome unknown: ${message}`);
    if (performance.now() >= deadline) throw new UnavailableError(`Read timed out: ${message}`);
    return undefined;
  }

  #serveRpc(raw: unknown): Promise<KvRpcReply> {
    return handleKvRpc(this, raw, {
      limits: this.#config.limits,
      forwarded: this.#leaderSide,
      leaderHint: () => {
        const leader = this.#node.leader;
        const address = this.#addresses.get(leader);
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
