/**
 * RaftNode: the async driver around RawNode, and the only file in raft/ that awaits, reads a
 * clock or uses timers. One loop steps the inbox and handles one Ready at a time: send the
 * leader's appends, persist (one save = one sync), send the rest, install/apply, advance, and
 * take a snapshot when the log has grown. Proposals arriving while a save is in flight pile up
 * in the core and go out together in the next Ready (group commit).
 */
import { setImmediate } from "node:timers";
import {
  ChangeRefusedError,
  NodeStoppedError,
  NotLeaderError,
  ProposalDroppedError,
} from "./errors.ts";
import {
  type ConfChange,
  decodeConfEntry,
  describeChange,
  isConfEntryData,
  isMember,
} from "./membership.ts";
import { DEFAULT_RAFT_CONFIG, type RaftConfig, type Role } from "./raft.ts";
import { type MembershipStatus, type ProgressStatus, RawNode } from "./raw_node.ts";
import {
  DEFAULT_SNAPSHOT_CONFIG,
  shouldSnapshot,
  type SnapshotConfig,
  type SnapshotStatus,
} from "./snapshot_policy.ts";
import type { DurableStorage } from "./storage.ts";
import type { ConfState, Entry, Message, NodeId, Ready, Snapshot, StateMachine } from "./types.ts";
import { asError, errorMessage } from "../util/errors.ts";

/** Driver tunables on top of the core's: tick length and snapshot thresholds. */
export interface RaftNodeConfig extends RaftConfig, SnapshotConfig {
  /** Length of one tick in milliseconds. */
  tickMs: number;
  /** When true no timer runs and the owner calls tick() (simulators, tests). */
  manualTicks: boolean;
}

/** Defaults suited to a LAN: 10 ms ticks, 50 ms heartbeats, 300-600 ms election timeouts. */
export const DEFAULT_NODE_CONFIG: Omit<RaftNodeConfig, keyof RaftConfig> = {
  tickMs: 10,
  ...DEFAULT_SNAPSHOT_CONFIG,
  manualTicks: false,
};

/** What propose() resolves with: where the command landed and what apply() returned. */
export interface ProposalResult {
  index: number;
  term: number;
  result: unknown;
}

/** A proposal accepted by the leader: its log position and a promise for its outcome. */
export interface Submitted {
  index: number;
  term: number;
  done: Promise<ProposalResult>;
}

/** Counters a node keeps; read through RaftNode.metrics. */
export interface RaftMetrics {
  proposals: number;
  proposalsDropped: number;
  applied: number;
  readIndexes: number;
  electionsStarted: number;
  leaderChanges: number;
  /** Configuration entries applied on this node. */
  confChanges: number;
  /** Leadership transfers this node started as leader. */
  leaderTransfers: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  snapshotsSent: number;
  saves: number;
  savedEntries: number;
  saveMsTotal: number;
  saveMsMax: number;
  messagesSent: number;
  /** Messages the core dropped for a term or index past the bound. */
  messagesDropped: number;
  /** Times a follower's log was found to end below what it had acknowledged (on a leader). */
  followerLogRegressions: number;
}

/** What status() reports. */
export interface NodeStatus {
  id: NodeId;
  role: Role;
  term: number;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  progress?: Record<string, ProgressStatus>;
  /** The configuration in force: voters, learners, addresses, cluster id. */
  voters: NodeId[];
  learners: NodeId[];
  /** Index of the configuration entry (or snapshot) that made the configuration in force. */
  configIndex: number;
  clusterId?: string;
  /** The last configuration changes this node saw commit, newest last. */
  configChanges: { index: number; change: string }[];
  /** The voter a leadership transfer hands over to (leader only), or 0. */
  transferee: NodeId;
  /**
   * Present once this node's log removes it: the index of that configuration entry, and
   * whether this node knows it committed (until then it still asks for votes, to finish it).
   */
  removal?: { index: number; committed: boolean };
}

/** Constructor options for RaftNode. */
export interface RaftNodeOptions {
  id: NodeId;
  /**
   * The voters of a new cluster, this node included; ignored once storage holds a membership.
   * Empty for a node joining an existing cluster (it never campaigns until it is a voter).
   */
  peers: NodeId[];
  storage: DurableStorage;
  stateMachine: StateMachine;
  /** Hands messages to the transport; must not throw or block (failures are Raft's to retry). */
  send: (messages: Message[]) => void;
  config?: Partial<RaftNodeConfig>;
  /** Randomness for election timeouts (Math.random by default). */
  rand?: () => number;
  /**
   * This process's incarnation: larger at every start of the node (default: the wall clock in
   * milliseconds when the node starts, which survives a wiped data directory, unlike anything
   * stored in it). Acknowledgements carry it so a leader can ignore those a wiped follower
   * sent before the wipe; simulators pass a counter.
   */
  incarnation?: number;
  /** Logs an event; `fields.level` ("warn", "error") marks the severe ones. */
  log?: (line: string, fields?: Record<string, unknown>) => void;
  /** Called whenever the known leader or the term changes. */
  onLeaderChange?: (leader: NodeId, term: number) => void;
  /** Called when an applied configuration entry or an installed snapshot changes membership. */
  onMembershipChange?: (conf: ConfState) => void;
  /** Called after each save with its duration and entry count. */
  onSave?: (ms: number, entries: number) => void;
  /**
   * A save, compact or invariant failed: the node has stopped. Default: log and exit the
   * process. A failed fsync is never retried: the kernel may already have dropped the dirty
   * pages, so a retry that succeeds could call durable a write that is lost; a restart
   * recovers from what is really on disk.
   */
  onFatal?: (err: Error) => void;
}

interface PendingProposal {
  term: number;
  resolve: (r: ProposalResult) => void;
  reject: (e: Error) => void;
}

interface PendingRead {
  index: number;
  resolve: (index: number) => void;
  reject: (e: Error) => void;
}

const TICK = 0;
const EMPTY = new Uint8Array(0);

/** A running Raft peer: timers, inbox, persistence, application and client promises. */
export class RaftNode {
  readonly id: NodeId;
  readonly #opts: RaftNodeOptions;
  readonly #cfg: RaftNodeConfig;
  readonly #log: (line: string, fields?: Record<string, unknown>) => void;
  #raw: RawNode | undefined;
  #inbox: (Message | typeof TICK)[] = [];
  #running = false;
  #started = false;
  #stopped = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #idleWaiters: (() => void)[] = [];
  /** Set while the loop waits on a write, to wake it when the inbox fills. */
  #wakeLoop?: () => void;
  #proposals = new Map<number, PendingProposal>();
  #reads = new Map<number, PendingRead>();
  /** Confirmed reads waiting for applied >= index, in confirmation order. */
  #confirmedReads: PendingRead[] = [];
  #applied = 0;
  /** The configuration as of the last applied entry: what a snapshot taken now records. */
  #appliedConf: ConfState = { peers: [] };
  #transferWaiters: {
    to: NodeId;
    until: number;
    resolve: (leader: NodeId) => void;
    reject: (e: Error) => void;
  }[] = [];
  /** Ticks stepped since start. */
  #ticks = 0;
  #snapshotIndex = 0;
  #bytesSinceSnapshot = 0;
  #leader: NodeId = 0;
  #term = 0;
  #leaderTerm = 0;
  #metrics: RaftMetrics = {
    proposals: 0,
    proposalsDropped: 0,
    applied: 0,
    readIndexes: 0,
    electionsStarted: 0,
    leaderChanges: 0,
    confChanges: 0,
    leaderTransfers: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    saves: 0,
    savedEntries: 0,
    saveMsTotal: 0,
    saveMsMax: 0,
    messagesSent: 0,
    messagesDropped: 0,
    followerLogRegressions: 0,
  };

  /** Creates a stopped node; call start(). */
  constructor(opts: RaftNodeOptions) {
    this.id = opts.id;
    this.#opts = opts;
    this.#cfg = { ...DEFAULT_RAFT_CONFIG, ...DEFAULT_NODE_CONFIG, ...opts.config };
    this.#log = opts.log ?? (() => {});
    if (!(this.#cfg.tickMs > 0)) throw new RangeError(`Invalid tickMs: ${this.#cfg.tickMs}`);
  }

  /** The effective configuration. */
  get config(): Readonly<RaftNodeConfig> {
    return this.#cfg;
  }

  /**
   * Restores the state machine from storage's snapshot, builds the core from the persisted
   * hard state and log, and starts ticking. Committed entries after the snapshot are applied
   * again to the fresh state machine (each exactly once per process lifetime).
   */
  start(): void {
    if (this.#started) throw new Error("Raft node already started");
    this.#started = true;
    const { storage, stateMachine } = this.#opts;
    const snap = storage.snapshot();
    if (snap.meta.index > 0) stateMachine.restore(snap.data);
    const stored = snap.meta.conf;
    this.#appliedConf = stored.peers.length > 0 || (stored.learners ?? []).length > 0
      ? structuredClone(stored)
      : { ...structuredClone(stored), peers: [...this.#opts.peers] };
    this.#applied = snap.meta.index;
    this.#snapshotIndex = snap.meta.index;
    this.#raw = new RawNode({
      id: this.id,
      peers: this.#opts.peers,
      storage,
      applied: snap.meta.index,
      rand: this.#opts.rand ?? Math.random,
      incarnation: this.#opts.incarnation ?? Date.now(),
      config: this.#cfg,
    });
    this.#term = this.#raw.term;
    const removal = this.#raw.removal();
    if (removal && !removal.committed) {
      // Killed between appending its removal and learning it committed: say so once, rather
      // than ask for votes in silence. A leader that hears it sends it the log, so it learns.
      this.#log(
        `This node's log holds its own removal at index ${removal.index}, not known to be committed: it asks for votes only until a leader confirms it`,
        { level: "warn" },
      );
    }
    if (!this.#cfg.manualTicks) {
      this.#timer = setInterval(() => this.tick(), this.#cfg.tickMs);
    }
    this.#kick();
  }

  /** Advances logical time by one tick (called by the timer, or by the owner with manualTicks). */
  tick(): void {
    if (this.#stopped || !this.#raw) return;
    this.#inbox.push(TICK);
    this.#kick();
  }

  /** Queues a message from the transport; it is stepped by the loop. */
  step(message: Message): void {
    if (this.#stopped || !this.#raw || message.to !== this.id) return;
    this.#inbox.push(message);
    this.#kick();
  }

  /**
   * Appends a command on the leader and returns its index and term at once, plus a promise
   * that settles when the entry is applied here. Throws NotLeaderError on a non-leader.
   */
  submit(data: Uint8Array): Submitted {
    const raw = this.#raw;
    if (this.#stopped || !raw) throw new NodeStoppedError();
    const index = raw.propose(data);
    if (index === 0) throw new NotLeaderError(raw.leader);
    const term = raw.term;
    this.#metrics.proposals++;
    const done = new Promise<ProposalResult>((resolve, reject) => {
      this.#proposals.set(index, { term, resolve, reject });
    });
    this.#kick(true);
    return { index, term, done };
  }

  /**
   * Replicates a command and resolves once it is applied on this node, with apply()'s return
   * value. Rejects NotLeaderError (with the known leader) or ProposalDroppedError.
   */
  propose(data: Uint8Array): Promise<ProposalResult> {
    try {
      return this.submit(data).done;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Linearizable read barrier (thesis §6.4): resolves with a read index once leadership was
   * confirmed by a quorum and this node applied up to it. Writes nothing to the log.
   */
  readIndex(): Promise<number> {
    const raw = this.#raw;
    if (this.#stopped || !raw) return Promise.reject(new NodeStoppedError());
    const ctx = raw.readIndex();
    if (ctx === 0) return Promise.reject(new NotLeaderError(raw.leader));
    this.#metrics.readIndexes++;
    const p = new Promise<number>((resolve, reject) => {
      this.#reads.set(ctx, { index: -1, resolve, reject });
    });
    this.#kick(true);
    return p;
  }

  /** The transport failed to send to `id`: fall back to probing it. */
  reportUnreachable(id: NodeId): void {
    if (this.#stopped || !this.#raw) return;
    this.#raw.reportUnreachable(id);
    this.#kick();
  }

  /** Role, term, leader, indexes and (on the leader) per-follower progress. */
  status(): NodeStatus {
    const raw = this.#raw;
    if (!raw) {
      return {
        id: this.id,
        role: "follower",
        term: 0,
        leader: 0,
        commit: 0,
        applied: 0,
        lastIndex: 0,
        snapshotIndex: 0,
        voters: [],
        learners: [],
        configIndex: 0,
        configChanges: [],
        transferee: 0,
      };
    }
    const ms = raw.membership();
    const s = raw.status();
    const out: NodeStatus = {
      id: this.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: this.#applied,
      lastIndex: s.lastIndex,
      snapshotIndex: this.#snapshotIndex,
      voters: ms.conf.peers,
      learners: ms.conf.learners ?? [],
      configIndex: ms.confIndex,
      configChanges: [...ms.history],
      transferee: ms.transferee,
    };
    if (ms.conf.clusterId) out.clusterId = ms.conf.clusterId;
    const removal = raw.removal();
    if (removal) out.removal = removal;
    if (s.progress) out.progress = s.progress;
    return out;
  }

  /** The configuration in force and what is under way (leader's view on the leader). */
  membership(): MembershipStatus | undefined {
    return this.#raw?.membership();
  }

  /** Ticks since the leader last heard from `id` (undefined when unknown or not leader). */
  heardAgo(id: NodeId): number | undefined {
    return this.#raw?.heardAgo(id);
  }

  /**
   * Proposes a single-server membership change on the leader and resolves once it is applied
   * here. Rejects NotLeaderError, ChangeRefusedError (with the reason) or ProposalDroppedError.
   */
  changeMembership(change: ConfChange): Promise<ProposalResult> {
    const raw = this.#raw;
    if (this.#stopped || !raw) return Promise.reject(new NodeStoppedError());
    const got = raw.proposeConfChange(change);
    if (typeof got === "string") return Promise.reject(new ChangeRefusedError(got));
    if (got === 0) return Promise.reject(new NotLeaderError(raw.leader));
    this.#metrics.proposals++;
    const term = raw.term;
    const done = new Promise<ProposalResult>((resolve, reject) => {
      this.#proposals.set(got, { term, resolve, reject });
    });
    this.#kick(true);
    return done;
  }

  /**
   * Hands leadership to voter `to` (0: the most up-to-date voter) and resolves with the new
   * leader once another node leads. Rejects ChangeRefusedError when it cannot start, and
   * ProposalDroppedError when the transfer was abandoned (after an election timeout).
   */
  transferLeadership(to: NodeId): Promise<NodeId> {
    const raw = this.#raw;
    if (this.#stopped || !raw) return Promise.reject(new NodeStoppedError());
    if (raw.role !== "leader") return Promise.reject(new NotLeaderError(raw.leader));
    const got = raw.transferLeadership(to);
    if (typeof got === "string") return Promise.reject(new ChangeRefusedError(got));
    this.#metrics.leaderTransfers++;
    this.#log(`Handing leadership to node ${got}`);
    const p = new Promise<NodeId>((resolve, reject) => {
      // Bounded in ticks (so virtual time works too): the core abandons the transfer after an
      // election timeout, and a leader that stepped down meanwhile may never see a successor.
      const until = this.#ticks + 2 * this.#cfg.electionTicks;
      this.#transferWaiters.push({ to: got, until, resolve, reject });
    });
    this.#kick();
    return p;
  }

  /** The leader this node knows of (0 when none); cheaper than status(). */
  get leader(): NodeId {
    return this.#raw?.leader ?? 0;
  }

  /** Proposals accepted by this leader and not yet applied or failed (a gauge for operators). */
  get pendingProposals(): number {
    return this.#proposals.size;
  }

  /** This node's current role; cheaper than status(). */
  get role(): Role {
    return this.#raw?.role ?? "follower";
  }

  /** Counters since start. */
  get metrics(): RaftMetrics {
    const c = this.#raw?.counters();
    return {
      ...this.#metrics,
      electionsStarted: c?.electionsStarted ?? 0,
      snapshotsSent: c?.snapshotsSent ?? 0,
      messagesDropped: c?.messagesDropped ?? 0,
      followerLogRegressions: c?.followerLogRegressions ?? 0,
    };
  }

  /** Term of entry i in this node's log (including unpersisted entries), for tests. */
  termAt(i: number): number | undefined {
    return this.#raw?.termAt(i);
  }

  /** Resolves when the inbox is empty and no Ready is being handled (tests, simulator). */
  settle(): Promise<void> {
    if (!this.#running && this.#inbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops timers and the loop (waiting for a save in flight), and rejects every pending
   * proposal and read. Does not close the storage: its owner does.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#inbox = [];
    this.#failAll(() => new ProposalDroppedError("node stopped"), () => new NodeStoppedError());
    if (this.#running) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Makes sure the loop runs. A client request (`gather`) starts it after the event loop's
   * current pass, so that every request arriving in that pass goes into one Ready: one append
   * per follower for the proposals, one heartbeat round for the reads (at 64 concurrent reads
   * this halved the leader's CPU per read and cut each follower's to a fifth). A peer's
   * message or a tick is stepped at the end of this task: it is on someone's critical path.
   */
  #kick(gather = false): void {
    if (this.#running) {
      // The loop may be waiting on a write: let it step what just arrived.
      this.#wakeLoop?.();
      return;
    }
    if (this.#stopped || !this.#raw) return;
    this.#running = true;
    if (gather) setImmediate(() => void this.#run());
    else queueMicrotask(() => void this.#run());
  }

  async #run(): Promise<void> {
    const raw = this.#raw!;
    try {
      while (!this.#stopped) {
        this.#stepInbox(raw);
        this.#observeRole(raw);
        if (!raw.hasReady()) {
          if (this.#inbox.length === 0) break;
          continue;
        }
        await this.#handleReady(raw, raw.ready());
      }
    } catch (err) {
      this.#fatal(asError(err));
    } finally {
      this.#running = false;
      if (!this.#stopped && this.#inbox.length > 0) {
        this.#kick();
      } else {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  #observeRole(raw: RawNode): void {
    const leader = raw.leader;
    const term = raw.term;
    if (this.#transferWaiters.length > 0) this.#settleTransfers(raw);
    if (leader !== this.#leader || term !== this.#term) {
      if (leader !== this.#leader) this.#metrics.leaderChanges++;
      const wasLeader = this.#leader === this.id;
      this.#leader = leader;
      this.#term = term;
      if (leader === this.id) this.#leaderTerm = term;
      if (wasLeader && !(leader === this.id && term === this.#leaderTerm)) {
        this.#log(`Lost leadership in term ${term}`);
      }
      try {
        this.#opts.onLeaderChange?.(leader, term);
      } catch (err) {
        this.#log(
          `onLeaderChange threw: ${errorMessage(err)}`,
        );
      }
    }
    if (raw.role !== "leader") {
      // Entries past the commit index may be overwritten by the new leader: their fate is
      // unknown here, so tell the proposers to retry (idempotently) rather than wait.
      if (this.#proposals.size > 0) {
        const commit = raw.commit;
        for (const [index, p] of this.#proposals) {
          if (index > commit) {
            this.#proposals.delete(index);
            this.#metrics.proposalsDropped++;
            p.reject(new ProposalDroppedError(`leadership lost before entry ${index} committed`));
          }
        }
      }
      if (this.#reads.size > 0) {
        for (const r of this.#reads.values()) r.reject(new NotLeaderError(leader));
        this.#reads.clear();
      }
    }
  }

  /** Resolves transfer waiters once another node leads; rejects them once the transfer ended. */
  #settleTransfers(raw: RawNode): void {
    const leader = raw.leader;
    if (leader !== 0 && leader !== this.id) {
      for (const w of this.#transferWaiters) w.resolve(leader);
      this.#transferWaiters = [];
    } else if (
      (raw.role === "leader" && raw.membership().transferee === 0) ||
      this.#transferWaiters.some((w) => this.#ticks >= w.until)
    ) {
      for (const w of this.#transferWaiters) {
        w.reject(
          new ProposalDroppedError(
            `leadership transfer to node ${w.to} did not finish within an election timeout`,
          ),
        );
      }
      this.#transferWaiters = [];
    }
  }

  #send(messages: Message[]): void {
    if (messages.length === 0) return;
    this.#metrics.messagesSent += messages.length;
    try {
      this.#opts.send(messages);
    } catch (err) {
      // Raft retries on its own; a failing transport must not stop the loop.
      this.#log(`Send failed: ${errorMessage(err)}`, { level: "warn" });
    }
  }

  #stepInbox(raw: RawNode): void {
    if (this.#inbox.length === 0) return;
    const items = this.#inbox;
    this.#inbox = [];
    for (const item of items) {
      if (item === TICK) {
        this.#ticks++;
        raw.tick();
      } else raw.step(item);
    }
    const { lines, suppressed } = raw.takeWarnings();
    for (const line of lines) this.#log(line);
    if (suppressed > 0) this.#log(`${suppressed} more warnings of the Raft core not logged`);
  }

  /**
   * Waits for a write while still stepping what arrives: acknowledgements, ticks and votes
   * move the core on (their replies wait for the next Ready, so nothing is promised before it
   * is durable), and entries that become committed are applied at once instead of one write
   * later. A leader counts its own entries toward commit only after their write (see
   * Raft.onPersisted), so a quorum is always one of durable copies.
   */
  async #awaitSave(raw: RawNode, saving: Promise<void>): Promise<void> {
    let settled = false;
    const done = saving.finally(() => {
      settled = true;
    });
    while (!settled && !this.#stopped) {
      if (this.#inbox.length === 0) {
        const woken = new Promise<void>((resolve) => (this.#wakeLoop = resolve));
        await Promise.race([done.catch(() => {}), woken]);
        this.#wakeLoop = undefined;
        if (settled || this.#stopped) break;
      }
      this.#stepInbox(raw);
      this.#observeRole(raw);
      this.#applyCommitted(raw.takeCommitted(), 0);
      this.#releaseConfirmedReads();
    }
    await done;
  }

  async #handleReady(raw: RawNode, rd: Ready): Promise<void> {
    const { storage } = this.#opts;
    this.#send(rd.messages);
    let saving: Promise<void> | undefined;
    let t0 = 0;
    if (rd.hardState || rd.entries.length > 0 || rd.snapshot) {
      t0 = performance.now();
      saving = storage.save(rd.hardState, rd.entries, rd.snapshot);
    }
    // Committed entries are applied while the write is in flight: they are durable on a quorum
    // already, whether or not this node's copy is (thesis §10.2.1). A snapshot must be
    // installed first, so then everything waits for the write.
    let next = 0;
    if (!rd.snapshot) next = this.#applyCommitted(rd.committedEntries, 0);
    if (saving) {
      if (rd.snapshot) await saving;
      else await this.#awaitSave(raw, saving);
      const ms = performance.now() - t0;
      const m = this.#metrics;
      m.saves++;
      m.savedEntries += rd.entries.length;
      m.saveMsTotal += ms;
      if (ms > m.saveMsMax) m.saveMsMax = ms;
      this.#opts.onSave?.(ms, rd.entries.length);
      if (this.#stopped) return;
    }
    this.#send(rd.messagesAfterSave);
    if (rd.snapshot) this.#installSnapshot(rd.snapshot);
    this.#applyCommitted(rd.committedEntries, next);
    raw.advance(rd);
    for (const rs of rd.readStates) {
      const r = this.#reads.get(rs.ctx);
      if (!r) continue;
      this.#reads.delete(rs.ctx);
      r.index = rs.index;
      this.#confirmedReads.push(r);
    }
    this.#releaseConfirmedReads();
    this.#maybeCompact(raw);
  }

  /** Resolves the confirmed reads whose read index this node has now applied. */
  #releaseConfirmedReads(): void {
    if (this.#confirmedReads.length === 0) return;
    const still: PendingRead[] = [];
    for (const r of this.#confirmedReads) {
      if (r.index <= this.#applied) r.resolve(r.index);
      else still.push(r);
    }
    this.#confirmedReads = still;
  }

  /**
   * Applies committed entries from position `from` on, in order and without gaps, settling the
   * matching proposals. Returns the next position (entries.length).
   */
  #applyCommitted(entries: Entry[], from: number): number {
    const { stateMachine } = this.#opts;
    let i = from;
    for (; i < entries.length; i++) {
      const e = entries[i];
      if (e.index <= this.#applied) continue;
      if (e.index !== this.#applied + 1) {
        throw new Error(
          `Raft invariant broken: applying entry ${e.index} after ${this.#applied} leaves a gap`,
        );
      }
      let result: unknown;
      let failure: Error | undefined;
      try {
        // Configuration entries belong to Raft: the state machine sees a no-op at that index.
        result = isConfEntryData(e.data)
          ? (this.#applyConf(e), stateMachine.apply({ ...e, data: EMPTY }))
          : stateMachine.apply(e);
      } catch (err) {
        failure = asError(err);
        this.#log(`Apply of entry ${e.index} threw: ${failure.message}`, { level: "error" });
      }
      this.#applied = e.index;
      this.#bytesSinceSnapshot += e.data.length;
      this.#metrics.applied++;
      const p = this.#proposals.get(e.index);
      if (p) {
        this.#proposals.delete(e.index);
        if (p.term !== e.term) {
          this.#metrics.proposalsDropped++;
          p.reject(new ProposalDroppedError(`entry ${e.index} was overwritten by term ${e.term}`));
        } else if (failure) {
          p.reject(failure);
        } else {
          p.resolve({ index: e.index, term: e.term, result });
        }
      }
    }
    return i;
  }

  /** Tracks the configuration as entries are applied, so a snapshot records the right one. */
  #applyConf(e: Entry): void {
    const { conf, change } = decodeConfEntry(e.data);
    const was = isMember(this.#appliedConf, this.id);
    this.#appliedConf = conf;
    this.#metrics.confChanges++;
    this.#log(`Configuration at index ${e.index}: ${describeChange(change)}`);
    if (was && !isMember(conf, this.id)) {
      this.#log(`This node was removed from the cluster at index ${e.index}: it stops campaigning`);
    }
    this.#notifyMembership();
  }

  #notifyMembership(): void {
    try {
      this.#opts.onMembershipChange?.(structuredClone(this.#appliedConf));
    } catch (err) {
      this.#log(`onMembershipChange threw: ${err instanceof Error ? err.message : err}`);
    }
  }

  #installSnapshot(snap: Snapshot): void {
    const index = snap.meta.index;
    this.#appliedConf = structuredClone(snap.meta.conf);
    this.#notifyMembership();
    this.#opts.stateMachine.restore(snap.data);
    this.#applied = index;
    this.#snapshotIndex = index;
    this.#bytesSinceSnapshot = 0;
    this.#metrics.snapshotsInstalled++;
    this.#log(`Installed a snapshot from the leader at index ${index} (${snap.data.length} bytes)`);
    for (const [i, p] of this.#proposals) {
      if (i <= index) {
        this.#proposals.delete(i);
        this.#metrics.proposalsDropped++;
        p.reject(new ProposalDroppedError(`entry ${i} was covered by a received snapshot`));
      }
    }
  }

  /** Takes a snapshot when the policy (snapshot_policy.ts) says so; this is the mechanism. */
  #maybeCompact(raw: RawNode): void {
    // A joining node that has not yet applied a configuration entry does not know the
    // membership at this index: a snapshot must never record an empty one.
    const conf = this.#appliedConf;
    if (conf.peers.length === 0 && (conf.learners ?? []).length === 0) return;
    const status: SnapshotStatus = {
      role: raw.role,
      applied: this.#applied,
      snapshotIndex: this.#snapshotIndex,
      bytesSinceSnapshot: this.#bytesSinceSnapshot,
      // A getter: the policy reads followers' progress only in the rare case it matters, and
      // this runs after every Ready.
      get progress() {
        return raw.status().progress;
      },
    };
    if (!shouldSnapshot(status, this.#cfg)) return;
    const index = this.#applied;
    // Entries can be applied (committed on a quorum) before this node's own copy is written;
    // the snapshot waits until storage holds the log it covers.
    if (index > this.#opts.storage.lastIndex()) return;
    const term = raw.termAt(index);
    if (term === undefined) return;
    const snap: Snapshot = {
      meta: { index, term, conf: structuredClone(this.#appliedConf) },
      data: this.#opts.stateMachine.snapshot(),
    };
    // Storage drops the covered log from memory at once; the file write and the segment
    // deletion run in the background so a large snapshot does not hold up ticks and acks.
    this.#snapshotIndex = index;
    this.#bytesSinceSnapshot = 0;
    this.#opts.storage.compact(snap).then(
      () => {
        // Counted once durable, so the metric never reports a snapshot a crash loses. (status()
        // reports where the log is compacted to, which moves at once.)
        this.#metrics.snapshotsTaken++;
        this.#log(`Took a snapshot at index ${index} (${snap.data.length} bytes)`);
      },
      (err) => this.#fatal(asError(err)),
    );
  }

  #failAll(proposalError: () => Error, readError: () => Error): void {
    for (const w of this.#transferWaiters) w.reject(proposalError());
    this.#transferWaiters = [];
    for (const p of this.#proposals.values()) p.reject(proposalError());
    this.#metrics.proposalsDropped += this.#proposals.size;
    this.#proposals.clear();
    for (const r of this.#reads.values()) r.reject(readError());
    this.#reads.clear();
    for (const r of this.#confirmedReads) r.reject(readError());
    this.#confirmedReads = [];
  }

  #fatal(err: Error): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#failAll(() => new ProposalDroppedError("node failed"), () => new NodeStoppedError());
    this.#log(`Fatal: ${err.message}`, { level: "error" });
    if (this.#opts.onFatal) {
      this.#opts.onFatal(err);
    } else {
      console.error(`raftmr: Raft node ${this.id} failed: ${err.message}`);
      Deno.exit(70);
    }
  }
}
