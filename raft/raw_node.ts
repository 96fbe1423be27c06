/**
 * RawNode: the one door into the consensus core. The caller ticks it, steps messages and
 * proposals into it, then takes a Ready, persists and sends what it says, and calls advance().
 * Pure and synchronous; the async driver around it is node.ts.
 */
import { type ConfChange, isConfEntryData } from "./membership.ts";
import type { ProgressState } from "./progress.ts";
import { DEFAULT_RAFT_CONFIG, Raft, type RaftConfig, type Role } from "./raft.ts";
import type { Storage } from "./storage.ts";
import type { ConfState, Entry, HardState, Message, NodeId, Ready } from "./types.ts";

/** Options for a RawNode. */
export interface RawNodeOptions {
  id: NodeId;
  /** All voters including this node; storage's recorded membership wins when present. */
  peers: NodeId[];
  storage: Storage;
  /** Index the state machine already reflects (usually storage.snapshot().meta.index). */
  applied?: number;
  /** Uniform random in [0, 1); seed it in tests. */
  rand: () => number;
  /** This process's incarnation, different at every start (0 or absent: none reported). */
  incarnation?: number;
  config?: Partial<RaftConfig>;
}

/** A read-only view of one follower's replication progress. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  /** Its log went backwards below what it had acknowledged, and it has not caught up since. */
  logWentBackwards: boolean;
}

/** A snapshot of the core's volatile and persistent state, for status pages and tests. */
export interface RawStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  progress?: Record<string, ProgressStatus>;
}

/** The membership as this node sees it: the configuration in force and what is under way. */
export interface MembershipStatus {
  /** The configuration in force (the last committed one). */
  conf: ConfState;
  /** Index of the entry (or snapshot) that made it. */
  confIndex: number;
  /** Leadership transfer target while one runs (leader only), else 0. */
  transferee: NodeId;
  /** The last configuration changes this node saw commit, newest last. */
  history: readonly { index: number; change: string }[];
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The synchronous interface to the Raft core. */
export class RawNode {
  readonly #raft: Raft;
  #prevHardState: HardState;
  /** Index of the last committed entry handed out by ready() or takeCommitted(). */
  #handedOut = 0;

  constructor(opts: RawNodeOptions) {
    const cfg = { ...DEFAULT_RAFT_CONFIG, ...opts.config };
    this.#raft = new Raft({
      ...cfg,
      id: opts.id,
      peers: opts.peers,
      storage: opts.storage,
      applied: opts.applied ?? opts.storage.snapshot().meta.index,
      rand: opts.rand,
      incarnation: opts.incarnation,
    });
    this.#prevHardState = opts.storage.initialState().hardState;
  }

  /** Advances logical time by one tick (elections, heartbeats, CheckQuorum). */
  tick(): void {
    this.#raft.tick();
  }

  /**
   * Steps a message received from a peer; messages for other nodes or unknown peers are ignored,
   * and one carrying a term or index past the bound (bounds.ts) is dropped with a warning.
   */
  step(m: Message): void {
    this.#raft.step(m);
  }

  /** Starts an election now (tests, leadership hand-off); PreVote still applies. */
  campaign(): void {
    if (this.#raft.role !== "leader") this.#raft.campaign(this.#raft.cfg.preVote);
  }

  /**
   * Appends a command to the leader's log; returns its index (its term is status().term), or 0
   * when this node is not the leader. Proposals made before the next ready() share one Ready.
   */
  propose(data: Uint8Array): number {
    if (isConfEntryData(data)) {
      throw new RangeError("Cannot propose a command that starts with the configuration mark 0xc1");
    }
    return this.#raft.propose(data);
  }

  /**
   * Proposes a single-server membership change: its index, 0 when this node is not the
   * leader, or the reason it is refused now.
   */
  proposeConfChange(change: ConfChange): number | string {
    return this.#raft.proposeConfChange(change);
  }

  /** Starts a leadership transfer; returns the target voter or the reason it cannot start. */
  transferLeadership(to: NodeId): NodeId | string {
    return this.#raft.transferLeadership(to);
  }

  /**
   * Where this node's configuration removes it and whether it knows that committed (until then
   * it may still campaign); undefined while it is a member.
   */
  removal(): { index: number; committed: boolean } | undefined {
    return this.#raft.removal();
  }

  /** The configuration in force, its index, and a transfer under way. */
  membership(): MembershipStatus {
    const r = this.#raft;
    return {
      conf: structuredClone(r.conf),
      confIndex: r.confIndex,
      transferee: r.transferee,
      history: r.confHistory.slice(),
    };
  }

  /** Ticks since the leader last heard from `id` (undefined if not heard while leading). */
  heardAgo(id: NodeId): number | undefined {
    return this.#raft.heardAgo(id);
  }

  /** Starts a ReadIndex round; returns its context (> 0), or 0 when not the leader. */
  readIndex(): number {
    return this.#raft.readIndex();
  }

  /** The transport failed to deliver to `id`. */
  reportUnreachable(id: NodeId): void {
    this.#raft.reportUnreachable(id);
  }

  /** Whether ready() would return anything to do. A query: it changes nothing. */
  hasReady(): boolean {
    const r = this.#raft;
    const log = r.log;
    return r.msgs.length > 0 || r.msgsAfterSave.length > 0 || r.hasPendingBroadcast() ||
      log.unstable.entries.length > 0 || log.unstable.snapshot !== undefined ||
      log.hasNextCommitted() || r.readStates.length > 0 ||
      !sameHardState(r.hardState(), this.#prevHardState);
  }

  /** Collects everything the driver must persist, send and apply; follow with advance(rd). */
  ready(): Ready {
    const r = this.#raft;
    r.flushBroadcast();
    const log = r.log;
    const hs = r.hardState();
    const rd: Ready = {
      entries: log.unstable.entries.slice(),
      messages: r.msgs,
      messagesAfterSave: r.msgsAfterSave,
      committedEntries: log.nextCommitted(r.cfg.maxApplyBytes),
      readStates: r.readStates,
    };
    if (!sameHardState(hs, this.#prevHardState)) rd.hardState = hs;
    const handed = rd.committedEntries;
    if (handed.length > 0) this.#handedOut = handed[handed.length - 1].index;
    if (log.unstable.snapshot) rd.snapshot = log.unstable.snapshot;
    r.msgs = [];
    r.msgsAfterSave = [];
    r.readStates = [];
    return rd;
  }

  /**
   * Committed entries not yet handed out, for a driver that applies while a Ready's write is in
   * flight (every entry of the outstanding Ready must already be applied). They count as applied
   * from now on, so no later Ready carries them again.
   */
  takeCommitted(): Entry[] {
    const log = this.#raft.log;
    // The outstanding Ready's committed entries are applied already (the contract above).
    log.appliedTo(this.#handedOut);
    if (!log.hasNextCommitted()) return [];
    const entries = log.nextCommitted(this.#raft.cfg.maxApplyBytes);
    if (entries.length > 0) {
      this.#handedOut = entries[entries.length - 1].index;
      log.appliedTo(this.#handedOut);
    }
    return entries;
  }

  /** Tells the core that rd was persisted, sent and applied. */
  advance(rd: Ready): void {
    const log = this.#raft.log;
    if (rd.hardState) this.#prevHardState = rd.hardState;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      log.unstable.stableTo(last.index, last.term);
      this.#raft.onPersisted(last.index, last.term);
    }
    if (rd.snapshot) {
      log.unstable.stableSnapTo(rd.snapshot.meta.index);
      log.appliedTo(rd.snapshot.meta.index);
    }
    if (rd.committedEntries.length > 0) {
      log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
  }

  /** Current role. */
  get role(): Role {
    return this.#raft.role;
  }

  /** Current term. */
  get term(): number {
    return this.#raft.term;
  }

  /** The leader this node knows of (0 when none). */
  get leader(): NodeId {
    return this.#raft.lead;
  }

  /** Highest committed index known to this node. */
  get commit(): number {
    return this.#raft.log.committed;
  }

  /** Term of entry i in this node's log (including unpersisted entries), or undefined. */
  termAt(i: number): number | undefined {
    return this.#raft.log.termOrUndefined(i);
  }

  /**
   * Lines the core wants logged since the last call (a dropped message, a follower whose log
   * went backwards), plus how many more were only counted; the driver logs them.
   */
  takeWarnings(): { lines: string[]; suppressed: number } {
    const r = this.#raft;
    const out = { lines: r.warnings, suppressed: r.warningsSuppressed };
    if (out.lines.length > 0) r.warnings = [];
    r.warningsSuppressed = 0;
    return out;
  }

  /** Core counters (elections started, snapshots sent/received, messages dropped, ...). */
  counters(): Readonly<Raft["counters"]> {
    return this.#raft.counters;
  }

  /** Role, term, leader, indexes and (on a leader) per-follower progress. */
  status(): RawStatus {
    const r = this.#raft;
    const s: RawStatus = {
      id: r.id,
      role: r.role,
      term: r.term,
      vote: r.vote,
      leader: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      snapshotIndex: r.log.firstIndex() - 1,
    };
    if (r.role === "leader") {
      s.progress = {};
      for (const [id, pr] of r.prs) {
        if (id === r.id) continue;
        s.progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          logWentBackwards: pr.regressedFrom > 0,
        };
      }
    }
    return s;
  }
}
