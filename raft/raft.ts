/**
 * The Raft state machine (Ongaro & Ousterhout 2014; Ongaro's thesis 2014), modelled on etcd's
 * raft package. Messages and ticks go in; messages, log changes and commit progress come out
 * through RawNode's Ready. Deterministic: no clock, no I/O, randomness only through `rand`.
 */
import { MAX_TERM_OR_INDEX, messageOutOfBounds } from "./bounds.ts";
import { RaftLog } from "./log.ts";
import {
  applyChange,
  type ConfChange,
  decodeConfEntry,
  describeChange,
  encodeConfEntry,
  isConfEntryData,
  normalize,
  quorumOf,
  refusal,
} from "./membership.ts";
import { Progress } from "./progress.ts";
import { ReadOnly } from "./read_only.ts";
import { nextChunk, SnapshotAssembler, startTransfer } from "./snapshot_chunks.ts";
import { CompactedError, type Storage } from "./storage.ts";
import {
  type AppendMessage,
  type AppendResponseMessage,
  type ConfState,
  type Entry,
  type HardState,
  type HeartbeatMessage,
  type HeartbeatResponseMessage,
  type Message,
  type NodeId,
  NONE,
  type ReadState,
  type Snapshot,
  type SnapshotMessage,
  type SnapshotResponseMessage,
  type VoteMessage,
} from "./types.ts";

/** Tunables of the core, in ticks, messages and bytes. */
export interface RaftConfig {
  /** A follower that hears nothing for a random [e, 2e) ticks starts an election. */
  electionTicks: number;
  /** A leader sends heartbeats every this many ticks. */
  heartbeatTicks: number;
  /** Thesis §9.6: ask for pre-votes before bumping the term, so rejoining nodes do not disrupt. */
  preVote: boolean;
  /** Thesis §6.2: a leader that hears from no quorum for an election timeout steps down. */
  checkQuorum: boolean;
  /** Upper bound on entry bytes in one append message (always at least one entry). */
  maxMsgBytes: number;
  /** Append messages in flight per follower while replicating. */
  maxInflightMsgs: number;
  /** Entry bytes in flight per follower while replicating. */
  maxInflightBytes: number;
  /** Upper bound on committed entry bytes handed out in one Ready (at least one entry). */
  maxApplyBytes: number;
  /** InstallSnapshot chunk size. */
  snapshotChunkBytes: number;
}

/** Defaults: with a 10 ms tick, heartbeats every 50 ms and elections after 300-600 ms. */
export const DEFAULT_RAFT_CONFIG: RaftConfig = {
  electionTicks: 30,
  heartbeatTicks: 5,
  preVote: true,
  checkQuorum: true,
  maxMsgBytes: 1 << 20,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 << 20,
  maxApplyBytes: 16 << 20,
  snapshotChunkBytes: 1 << 20,
};

/** How many election timeouts a leader keeps feeding a removed follower. */
const DEPARTING_TICKS_PER_ELECTION = 10;

/** The role a node plays in its current term. */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Warnings kept between two takes by the driver; more are only counted. */
const MAX_WARNINGS = 32;

/** Options for constructing the core. */
export interface RaftOptions extends RaftConfig {
  id: NodeId;
  /**
   * The voters of a new cluster, this node included (ignored when storage holds a membership).
   * Empty for a node that joins an existing cluster: it waits for the leader to reach it.
   */
  peers: NodeId[];
  storage: Storage;
  /** Last index the state machine already reflects (the restored snapshot's index). */
  applied: number;
  /** Uniform random number in [0, 1): the only randomness the core uses. */
  rand: () => number;
  /**
   * This process's incarnation, different at every start (the driver draws it), carried in
   * acknowledgements so a leader can ignore those sent before a wipe (HeartbeatResponseMessage
   * inc). 0 or absent: none reported.
   */
  incarnation?: number;
}

/** The consensus state machine; reached only through RawNode. */
export class Raft {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly log: RaftLog;
  /**
   * The configuration in force: that of the newest configuration entry in the log, committed
   * or not (thesis §4.1), else the snapshot's.
   */
  conf: ConfState;
  /** Index of the entry that made `conf` (the snapshot's index when it came from one). */
  confIndex = 0;
  /** Configuration changes this node saw commit, newest last (a few, for status pages). */
  readonly confHistory: { index: number; change: string }[] = [];
  /** Committed entries up to this index were scanned for the history and a leader's removal. */
  #confScanned = 0;
  /** The snapshot's configuration, in force when the log after it holds no configuration. */
  #baseConf: ConfState;
  #baseIndex = 0;
  /** The configuration entries in the log after the snapshot, in index order. */
  #confLog: { index: number; term: number; conf: ConfState }[] = [];
  /** Leadership transfer target (etcd leadTransferee), NONE when no transfer runs. */
  #transferee: NodeId = NONE;
  #transferElapsed = 0;
  /** Logical time in ticks, and when the leader last heard from each member. */
  #now = 0;
  readonly #heardAt = new Map<NodeId, number>();
  /** Removed followers the leader still feeds until this tick, so they learn their removal. */
  readonly #departing = new Map<NodeId, number>();
  readonly prs = new Map<NodeId, Progress>();
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = "follower";
  /** Messages that do not depend on the pending write (a leader's appends and heartbeats). */
  msgs: Message[] = [];
  /** Messages that must wait until the pending write is durable (etcd: msgsAfterAppend). */
  msgsAfterSave: Message[] = [];
  readStates: ReadState[] = [];
  #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  #rand: () => number;
  readonly #incarnation: number;
  #needBroadcast = false;
  readonly #incoming = new SnapshotAssembler();
  readonly #reads = new ReadOnly();
  /** Counters for metrics; read by the driver. */
  readonly counters = {
    electionsStarted: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    /** Messages dropped because a term or index was past the bound (bounds.ts). */
    messagesDropped: 0,
    /** Followers found to hold less than they had acknowledged (see #followerLostEntries). */
    followerLogRegressions: 0,
  };
  /**
   * Lines the driver should log (the core does no I/O), oldest first; at most MAX_WARNINGS are
   * kept between two takes, the rest only counted in warningsSuppressed.
   */
  warnings: string[] = [];
  warningsSuppressed = 0;

  constructor(opts: RaftOptions) {
    this.id = opts.id;
    this.cfg = {
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks,
      preVote: opts.preVote,
      checkQuorum: opts.checkQuorum,
      maxMsgBytes: opts.maxMsgBytes,
      maxInflightMsgs: opts.maxInflightMsgs,
      maxInflightBytes: opts.maxInflightBytes,
      maxApplyBytes: opts.maxApplyBytes,
      snapshotChunkBytes: opts.snapshotChunkBytes,
    };
    if (this.cfg.heartbeatTicks < 1 || this.cfg.electionTicks <= this.cfg.heartbeatTicks) {
      throw new RangeError(
        `Invalid Raft timing: electionTicks (${this.cfg.electionTicks}) must exceed heartbeatTicks (${this.cfg.heartbeatTicks}) >= 1`,
      );
    }
    this.#rand = opts.rand;
    this.#incarnation = opts.incarnation ?? 0;
    this.log = new RaftLog(opts.storage, opts.applied);
    const { hardState, conf } = opts.storage.initialState();
    const stored = conf.peers.length > 0 || (conf.learners ?? []).length > 0;
    this.#baseConf = normalize(stored ? conf : { ...conf, peers: opts.peers });
    this.#baseIndex = this.log.firstIndex() - 1;
    this.conf = this.#baseConf;
    this.confIndex = this.#baseIndex;
    this.#confScanned = this.#baseIndex;
    if (this.log.firstIndex() <= this.log.lastIndex()) {
      this.#noteEntries(this.log.slice(this.log.firstIndex(), this.log.lastIndex() + 1));
    }
    this.#refreshConf(false);
    if (hardState.commit > this.log.lastIndex()) {
      throw new Error(
        `Raft invariant broken: persisted commit ${hardState.commit} is past last index ${this.log.lastIndex()}`,
      );
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.log.commitTo(hardState.commit);
    this.#syncConf();
    this.becomeFollower(this.term, NONE);
  }

  /** The voters of the configuration in force. */
  get peers(): NodeId[] {
    return this.conf.peers;
  }

  /** The learners of the configuration in force. */
  get learners(): NodeId[] {
    return this.conf.learners ?? [];
  }

  /** Votes or acknowledgements needed: a majority of the voters (learners never count). */
  get quorum(): number {
    return quorumOf(this.conf.peers.length);
  }

  /** The voter a leadership transfer is handing over to, or NONE. */
  get transferee(): NodeId {
    return this.#transferee;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  #warn(line: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(line);
    else this.warningsSuppressed++;
  }

  /**
   * Whether this node may campaign: it is a voter of its newest configuration, or of the
   * newest committed one. The second case is a leader that appended its own removal and lost
   * office before it committed: the remaining voters may lack that entry (and still count this
   * node), and its longer log makes them refuse each other, so it must be able to win with the
   * new configuration's votes (counted as always by its newest configuration), commit the
   * removal and hand over.
   */
  #promotable(): boolean {
    if (this.peers.includes(this.id)) return true;
    if (this.confIndex <= this.log.committed) return false;
    return this.#committedConf().peers.includes(this.id);
  }

  /** The newest configuration this node knows to be committed. */
  #committedConf(): ConfState {
    if (this.confIndex <= this.log.committed) return this.conf;
    let committed = this.#baseConf;
    for (const c of this.#confLog) if (c.index <= this.log.committed) committed = c.conf;
    return committed;
  }

  /**
   * Whether `id` was removed by a configuration this node knows committed: its vote requests
   * are ignored. A removal still pending is not enough: until it commits the removed node is a
   * member of the committed configuration, and it may be the only node able to win (and
   * commit its removal, then hand over): see #promotable().
   */
  #removedForGood(id: NodeId): boolean {
    return (this.#committedConf().removed ?? []).includes(id);
  }

  #send(m: Message): void {
    if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") this.msgs.push(m);
    else this.msgsAfterSave.push(m);
  }

  #resetRandomizedElectionTimeout(): void {
    const e = this.cfg.electionTicks;
    this.#randomizedElectionTimeout = e + Math.floor(this.#rand() * e);
  }

  #reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#resetRandomizedElectionTimeout();
    this.#votes.clear();
    this.#needBroadcast = false;
    this.#reads.reset();
    this.#transferee = NONE;
    this.#transferElapsed = 0;
    this.prs.clear();
    this.#heardAt.clear();
    this.#departing.clear();
    const last = this.log.lastIndex();
    // Our own match counts only what the driver has persisted: entries still in a write may be
    // lost in a crash, and a commit must rest on a quorum of durable copies (thesis §10.2.1).
    const durable = Math.min(last, this.log.unstable.offset - 1);
    for (const p of [...this.peers, ...this.learners]) {
      const pr = new Progress(last + 1);
      if (p === this.id) pr.match = durable;
      this.prs.set(p, pr);
    }
  }

  /**
   * Records the configuration entries among entries now in the log (appended by this leader or
   * received from one). Entries the log no longer holds at their index and term (a follower's
   * conflicting suffix was overwritten) are forgotten first, so the configuration in force goes
   * back to the previous one, as the thesis requires.
   */
  #noteEntries(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0].index;
    const last = this.log.lastIndex();
    this.#confLog = this.#confLog.filter((c) =>
      c.index < first || (c.index <= last && this.log.termOrUndefined(c.index) === c.term)
    );
    for (const e of entries) {
      if (!isConfEntryData(e.data) || this.log.termOrUndefined(e.index) !== e.term) continue;
      if (this.#confLog.some((c) => c.index === e.index)) continue;
      this.#confLog.push({ index: e.index, term: e.term, conf: decodeConfEntry(e.data).conf });
    }
    this.#confLog.sort((a, b) => a.index - b.index);
  }

  /** Puts the newest configuration in the log in force; reacts when it changed. */
  #refreshConf(live = true): void {
    const top = this.#confLog[this.#confLog.length - 1];
    const conf = top ? top.conf : this.#baseConf;
    const index = top ? top.index : this.#baseIndex;
    if (index === this.confIndex && conf === this.conf) return;
    this.conf = conf;
    this.confIndex = index;
    if (live) this.#onConfChanged();
  }

  /**
   * Follows the commit index over configuration entries: keeps the history of committed
   * changes, and a leader whose own removal committed hands leadership over.
   */
  #syncConf(): void {
    const committed = this.log.committed;
    if (committed <= this.#confScanned) return;
    let removed = false;
    for (const c of this.#confLog) {
      if (c.index <= this.#confScanned || c.index > committed) continue;
      const e = this.log.slice(c.index, c.index + 1)[0];
      this.confHistory.push({
        index: c.index,
        change: describeChange(decodeConfEntry(e.data).change),
      });
      if (this.confHistory.length > 16) this.confHistory.shift();
      if (!c.conf.peers.includes(this.id)) removed = true;
    }
    this.#confScanned = committed;
    // Thesis §4.2.2: a leader not in the new configuration steps down once it commits. Hand over
    // to the most up-to-date voter first so nobody waits out an election timeout; its higher
    // term makes us step down.
    if (removed && this.role === "leader" && !this.peers.includes(this.id)) {
      this.#startTransfer(this.#bestVoter());
    }
  }

  /**
   * Brings a leader's trackers in line with a new configuration (new members probed, removed
   * ones fed a while longer) and drops a transfer to a node that is no longer a voter.
   */
  #onConfChanged(): void {
    if (this.#transferee !== NONE && !this.peers.includes(this.#transferee)) {
      this.#transferee = NONE;
    }
    if (this.role !== "leader") return;
    const members = new Set([...this.peers, ...this.learners]);
    for (const id of [...this.prs.keys()]) {
      if (members.has(id) || this.#departing.has(id)) continue;
      if (id === this.id) {
        this.prs.delete(id);
        continue;
      }
      // A removed follower learns of its removal only from a commit index that covers it:
      // keep feeding it for a while (it counts for nothing) so it can stop campaigning and
      // record that it was removed, instead of waiting forever for a leader.
      this.#departing.set(id, this.#now + DEPARTING_TICKS_PER_ELECTION * this.cfg.electionTicks);
    }
    const last = this.log.lastIndex();
    for (const id of members) {
      if (this.prs.has(id)) continue;
      this.prs.set(id, new Progress(last + 1));
    }
    // A leader removed by this entry keeps leading without counting itself (thesis §4.2.2)
    // until the entry commits: see #syncConf().
    // Fewer voters may mean a smaller quorum: the commit index may move now.
    if (this.#maybeCommit()) this.#onCommitAdvanced();
    this.#needBroadcast = true;
  }

  /**
   * A node removed for good asks this leader for votes: it has not learned that its removal
   * committed (it was down when the leader fed it the log, e.g. killed between appending its
   * removal and hearing the commit), so it would campaign in vain forever. Feed it the log again
   * for a while, as right after the removal, so it learns, records that it was removed and
   * stops; etcd's peers likewise tell a removed member so, and it stops. Only when its term is
   * not above ours: a higher-term reply would depose this leader.
   */
  #feedRemoved(m: VoteMessage): void {
    const ownTerm = m.type === "preVote" ? m.term - 1 : m.term;
    if (ownTerm > this.term) return;
    const until = this.#now + DEPARTING_TICKS_PER_ELECTION * this.cfg.electionTicks;
    const fed = this.prs.get(m.from);
    this.#departing.set(m.from, until);
    if (fed) return;
    const pr = new Progress(this.log.lastIndex() + 1);
    this.prs.set(m.from, pr);
    this.#warn(
      `Removed node ${m.from} asks for votes: it has not learned its removal, sending it the log so it does`,
    );
    this.#sendAppend(m.from, pr, true);
  }

  /**
   * Where this node's configuration says it was removed, and whether it knows that committed;
   * undefined while it is not removed. Until committed it may still campaign (#promotable).
   */
  removal(): { index: number; committed: boolean } | undefined {
    if (!(this.conf.removed ?? []).includes(this.id)) return undefined;
    let index = this.#baseIndex;
    for (const c of this.#confLog) {
      if ((c.conf.removed ?? []).includes(this.id)) {
        index = c.index;
        break;
      }
    }
    return { index, committed: index <= this.log.committed };
  }

  /** The voter other than this node with the highest match index (ties: lowest id), or NONE. */
  #bestVoter(): NodeId {
    let best = NONE;
    let bestMatch = -1;
    for (const id of this.peers) {
      const pr = this.prs.get(id);
      if (id === this.id || !pr) continue;
      if (pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    return best;
  }

  #sendTimeoutNow(to: NodeId): void {
    this.#send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.#reset(term);
    this.lead = lead;
    this.role = "follower";
  }

  becomePreCandidate(): void {
    // Thesis §9.6: the term does not change until the pre-vote succeeds.
    this.#votes.clear();
    this.lead = NONE;
    this.role = "preCandidate";
    this.#resetRandomizedElectionTimeout();
  }

  becomeCandidate(): void {
    this.#reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  becomeLeader(): void {
    this.#reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    const self = this.prs.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Raft §8: a no-op entry lets the new leader commit (and learn the commit index) promptly.
    this.#appendEntry(new Uint8Array(0));
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.#now++;
    if (this.role === "leader") this.#tickHeartbeat();
    else this.#tickElection();
    this.#syncConf();
  }

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0;
      this.campaign(this.cfg.preVote);
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#transferee !== NONE && ++this.#transferElapsed >= this.cfg.electionTicks) {
      // etcd: a transfer that did not finish within an election timeout is abandoned, and the
      // leader takes proposals again; a removed leader tries again instead (with the voter
      // that is most up to date now).
      this.#transferee = NONE;
      if (!this.peers.includes(this.id)) this.#startTransfer(this.#bestVoter());
    }
    for (const [id, until] of this.#departing) {
      if (this.#now < until) continue;
      this.#departing.delete(id);
      if (!this.peers.includes(id) && !this.learners.includes(id)) this.prs.delete(id);
    }
    if (this.#electionElapsed >= this.cfg.electionTicks) {
      this.#electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        let active = 0;
        for (const [id, pr] of this.prs) {
          if (this.peers.includes(id) && (id === this.id || pr.recentActive)) active++;
          if (id !== this.id) pr.recentActive = false;
        }
        if (active < this.quorum) {
          this.becomeFollower(this.term, NONE);
          return;
        }
      }
    }
    if (this.#heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat();
      for (const [id, pr] of this.prs) {
        const t = pr.transfer;
        if (id === this.id || pr.state !== "snapshot" || !t) continue;
        // A lost chunk (or a restarted follower) stalls the transfer: resend from the last ack.
        if (++t.stall >= 4) {
          t.stall = 0;
          t.offset = t.acked;
          this.#sendSnapshotChunk(id, pr);
        }
      }
    }
  }

  /**
   * Starts an election (or a pre-vote round first). `transfer` marks one the leader asked for:
   * voters grant it although they still hear from that leader.
   */
  campaign(pre: boolean, transfer = false): void {
    if (!this.#promotable()) return;
    if (this.term >= MAX_TERM_OR_INDEX) {
      // The next term could not be sent: every peer would drop it (bounds.ts).
      this.#warn(`Cannot campaign: term ${this.term} is at the bound for terms`);
      return;
    }
    let type: "vote" | "preVote";
    let voteTerm: number;
    if (pre) {
      this.becomePreCandidate();
      type = "preVote";
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      this.counters.electionsStarted++;
      type = "vote";
      voteTerm = this.term;
    }
    if (this.#poll(this.id, true) >= this.quorum) {
      // Single-node cluster: we are the quorum.
      if (pre) this.campaign(false);
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    // Votes count by the newest configuration (#poll), but the request also goes to the voters
    // of the committed one while a change is pending: a voter being removed may be the only
    // node able to win and finish the change, and if it never hears our terms it stays one
    // behind and asks for votes only in terms we already voted for ourselves, forever (no-
    // PreVote sweep seed 2469). etcd, which switches configurations only once committed, asks
    // that voter as a matter of course. A request to a node that cannot count is harmless.
    const asked = new Set(this.peers);
    if (this.confIndex > this.log.committed) {
      for (const p of this.#committedConf().peers) asked.add(p);
    }
    for (const p of asked) {
      if (p === this.id) continue;
      const m: VoteMessage = { type, from: this.id, to: p, term: voteTerm, index, logTerm };
      if (transfer) m.transfer = true;
      this.#send(m);
    }
  }

  /** Records a vote (only voters' count) and returns the number of grants. */
  #poll(id: NodeId, granted: boolean): number {
    if (!this.#votes.has(id) && this.peers.includes(id)) this.#votes.set(id, granted);
    let n = 0;
    for (const v of this.#votes.values()) if (v) n++;
    return n;
  }

  #rejections(): number {
    let n = 0;
    for (const v of this.#votes.values()) if (!v) n++;
    return n;
  }

  /** Feeds one message from a peer into the state machine. */
  step(m: Message): void {
    this.#step(m);
    this.#syncConf();
  }

  #step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    const outOfBounds = messageOutOfBounds(m);
    if (outOfBounds) {
      // Drivers validate at the transport already; this keeps the rule for any other caller.
      this.counters.messagesDropped++;
      this.#warn(`Dropped a ${m.type} message from node ${m.from}: ${outOfBounds}`);
      return;
    }
    const isVote = m.type === "vote" || m.type === "preVote";
    // Only the ids a committed configuration says were removed may not ask for votes: a
    // removed node must not disrupt the cluster. Anyone else may, a learner or an id we have
    // never heard of: it may already be a voter in a newer configuration we have not received
    // (a promoted learner, sweep seed 1720; a voter added directly to a 2-node cluster, whose
    // addition committed with its own copy), and its vote can be the one an election needs.
    // This is the thesis' rule (§4.1: a server votes for a candidate outside its
    // configuration) and etcd-io/raft's (it grants any candidate whose log is up to date);
    // hashicorp/raft ignores every id outside its latest configuration and deadlocks in the
    // second case. A removal not yet committed does not count either (see #removedForGood):
    // ignoring such a node left this voter a term behind the voters it drags along, so with
    // PreVote off it asked for votes in terms where they had already voted for the removed
    // node, again and again (no-PreVote sweep seed 1209: a livelock). Peers are authenticated
    // by the handshake, so an id here is a node of this cluster. Leaders' messages come from
    // anyone: a joining node knows no members yet, and a follower may learn of a
    // configuration after the leader does.
    if (isVote && this.#removedForGood(m.from)) {
      if (this.role === "leader") this.#feedRemoved(m as VoteMessage);
      return;
    }
    if (m.term > this.term) {
      if (isVote && !(m as VoteMessage).transfer) {
        // Thesis §4.2.3: while we hear from a live leader, ignore would-be disruptors.
        const inLease = this.cfg.checkQuorum && this.lead !== NONE &&
          this.#electionElapsed < this.cfg.electionTicks;
        if (inLease) return;
      }
      if (m.type === "preVote" || (m.type === "preVoteResp" && !m.reject)) {
        // A pre-vote (or a grant of ours) carries the future term; do not adopt it.
      } else if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if (
        (this.cfg.checkQuorum || this.cfg.preVote) &&
        (m.type === "app" || m.type === "heartbeat" || m.type === "snap")
      ) {
        // A stale leader (e.g. after a partition) learns our term and steps down; without this
        // a node stuck at a higher term could never rejoin when pre-votes are rejected.
        this.#send(this.#appResp(m.from, 0, false));
      } else if (m.type === "preVote") {
        this.#send({
          type: "preVoteResp",
          from: this.id,
          to: m.from,
          term: this.term,
          reject: true,
        });
      }
      return;
    }

    if (m.type === "vote" || m.type === "preVote") {
      this.#handleVote(m);
      return;
    }
    switch (this.role) {
      case "leader":
        this.#stepLeader(m);
        break;
      case "candidate":
      case "preCandidate":
        this.#stepCandidate(m);
        break;
      case "follower":
        this.#stepFollower(m);
        break;
    }
  }

  #handleVote(m: VoteMessage): void {
    const canVote = this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === "preVote" && m.term > this.term);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    // Raft §5.4.1: only grant to candidates whose log is at least as up to date as ours.
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.#send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === "vote") {
        this.#electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.#send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
      case "heartbeat":
      case "snap":
        this.becomeFollower(m.term, m.from);
        this.#stepFollower(m);
        return;
      case "voteResp":
      case "preVoteResp": {
        const mine = this.role === "candidate" ? "voteResp" : "preVoteResp";
        if (m.type !== mine) return;
        const granted = this.#poll(m.from, !m.reject);
        if (granted >= this.quorum) {
          if (this.role === "preCandidate") this.campaign(false);
          else this.becomeLeader();
        } else if (this.#rejections() >= this.quorum) {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return;
    }
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case "app":
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleAppend(m);
        return;
      case "heartbeat":
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleHeartbeat(m);
        return;
      case "snap":
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleSnapshot(m);
        return;
      case "timeoutNow":
        // Leadership transfer: campaign at once, skipping PreVote (the leader vouches for us).
        if (m.from === this.lead && this.#promotable()) this.campaign(false, true);
        return;
      default:
        return;
    }
  }

  #appResp(
    to: NodeId,
    index: number,
    reject: boolean,
    hintIndex = 0,
    hintTerm = 0,
  ): AppendResponseMessage {
    const m: AppendResponseMessage = {
      type: "appResp",
      from: this.id,
      to,
      term: this.term,
      index,
      reject,
      hintIndex,
      hintTerm,
    };
    if (this.#incarnation) m.inc = this.#incarnation;
    return m;
  }

  #handleAppend(m: AppendMessage): void {
    const log = this.log;
    if (m.index < log.committed) {
      this.#send(this.#appResp(m.from, log.committed, false));
      return;
    }
    const last = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.#noteEntries(m.entries);
      this.#refreshConf();
      this.#send(this.#appResp(m.from, last, false));
      return;
    }
    // Fast backup: tell the leader the conflicting term and where it starts in our log, or how
    // short our log is, so it skips a whole term per round trip instead of one entry.
    const li = log.lastIndex();
    if (m.index > li) {
      this.#send(this.#appResp(m.from, m.index, true, li + 1, 0));
      return;
    }
    const t = log.term(m.index);
    // Terms never decrease along the log: binary search the first index holding term t.
    let lo = log.committed + 1;
    let hi = m.index;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2); // not >>> 1: indexes may pass 2^31
      if (log.term(mid) >= t) hi = mid;
      else lo = mid + 1;
    }
    this.#send(this.#appResp(m.from, m.index, true, lo, t));
  }

  #handleHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(match, commit): entries we acknowledged in this term, after writing
    // them. A log that ends before that lost acknowledged entries (a wiped or replaced data
    // directory); etcd panics here, we tell the leader, which stops counting them.
    const last = this.log.lastIndex();
    const lost = m.commit > last;
    this.log.commitTo(Math.min(m.commit, last));
    const resp: HeartbeatResponseMessage = {
      type: "heartbeatResp",
      from: this.id,
      to: m.from,
      term: this.term,
      ctx: m.ctx,
      reject: lost,
      index: last,
    };
    if (this.#incarnation) resp.inc = this.#incarnation;
    this.#send(resp);
  }

  #snapResp(to: NodeId, index: number, offset: number, reject: boolean): SnapshotResponseMessage {
    return { type: "snapResp", from: this.id, to, term: this.term, index, offset, reject };
  }

  #handleSnapshot(m: SnapshotMessage): void {
    if (m.index <= this.log.committed) {
      this.#incoming.reset();
      this.#send(this.#appResp(m.from, this.log.committed, false));
      return;
    }
    const got = this.#incoming.accept(m);
    if (got.kind !== "complete") {
      this.#send(this.#snapResp(m.from, m.index, got.offset, got.kind === "reject"));
    } else if (this.restore(got.snapshot)) {
      this.counters.snapshotsReceived++;
      this.#send(this.#appResp(m.from, this.log.lastIndex(), false));
    } else {
      this.#send(this.#appResp(m.from, this.log.committed, false));
    }
  }

  /** Installs a received snapshot unless our log already covers it; returns whether it did. */
  restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // Raft §7: our log already holds the snapshot's last entry; keep the entries after it.
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    // The whole log is replaced: the snapshot's configuration is the one in force now.
    this.#baseConf = normalize(s.meta.conf);
    this.#baseIndex = s.meta.index;
    this.#confLog = [];
    this.#confScanned = s.meta.index;
    this.#refreshConf();
    const self = this.prs.get(this.id);
    if (self) {
      self.match = s.meta.index;
      self.next = s.meta.index + 1;
    }
    return true;
  }

  #stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    if (
      (m.type === "appResp" || m.type === "heartbeatResp") && pr.staleIncarnation(m.inc)
    ) {
      // Sent by a process whose log has since been found gone (#followerLostEntries): its ack
      // would count entries the follower no longer holds, and undo the detection.
      return;
    }
    this.#heardAt.set(m.from, this.#now);
    switch (m.type) {
      case "appResp":
        pr.recentActive = true;
        this.#handleAppendResponse(m, pr);
        return;
      case "heartbeatResp":
        pr.recentActive = true;
        pr.probeSent = false;
        if (m.reject && m.index < pr.match && pr.lostEntriesReportedBy(m.inc)) {
          this.#followerLostEntries(m.from, pr, m.index);
        }
        if (pr.match < this.log.lastIndex()) {
          // Appends may have been lost (or the follower restarted): free a slot so at least one
          // append goes out; if the follower lacks its predecessor it rejects and we probe.
          if (
            pr.state === "replicate" &&
            pr.isPaused(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes)
          ) {
            pr.inflights.freeFirst();
          }
          this.#sendAppend(m.from, pr, true);
        }
        if (m.ctx > pr.ackCtx) {
          pr.ackCtx = m.ctx;
          this.#releaseReads();
        }
        return;
      case "snapResp": {
        pr.recentActive = true;
        const t = pr.transfer;
        if (pr.state !== "snapshot" || !t || m.index !== pr.pendingSnapshot) return;
        t.stall = 0;
        if (m.reject) {
          t.offset = m.offset;
          t.acked = m.offset;
          this.#sendSnapshotChunk(m.from, pr);
        } else if (m.offset > t.acked) {
          t.acked = m.offset;
          if (t.acked === t.offset && t.offset < t.snapshot.data.length) {
            this.#sendSnapshotChunk(m.from, pr);
          }
        }
        return;
      }
      default:
        return;
    }
  }

  #handleAppendResponse(m: AppendResponseMessage, pr: Progress): void {
    if (m.reject) {
      if (pr.state === "snapshot") return;
      if (m.index <= pr.match || m.index >= pr.next) return; // stale
      if (pr.state === "probe" && m.index !== pr.next - 1) return; // answers an older probe
      pr.becomeProbe();
      pr.next = Math.max(pr.match + 1, Math.min(this.#backupNext(m), m.index));
      this.#sendAppend(m.from, pr, true);
      return;
    }
    const paused = pr.isPaused(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    if (!pr.maybeUpdate(m.index)) {
      if (paused && pr.state === "probe") this.#sendAppend(m.from, pr, false);
      return;
    }
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot") {
      if (pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
    } else {
      pr.inflights.freeLE(m.index);
    }
    if (this.#maybeCommit()) this.#onCommitAdvanced();
    // Keep the pipe full: send whatever the follower is missing, within flow-control bounds.
    while (this.#sendAppend(m.from, pr, false)) {
      if (pr.state !== "replicate") break;
    }
    if (m.from === this.#transferee && pr.match === this.log.lastIndex()) {
      this.#sendTimeoutNow(m.from);
    }
  }

  /**
   * Follower `id` says its log ends at `last`, below the match it had acknowledged: it lost
   * entries it had written (its data directory was wiped or replaced). Counting it at its old
   * match would let a commit rest on copies that no longer exist, so its match drops to nothing
   * and it is probed from its real end; its acknowledgements from then on are of entries it has
   * written again, so they count as any durable copy does. Acks still in flight from the
   * process that held the lost entries (one sent just before the wipe, delivered after this)
   * would count them again and undo all this: replies carry the sender's incarnation, which
   * grows at every start, and those from incarnations older than the one reporting the loss
   * are ignored from then on (Progress.lostEntriesReportedBy; "ignore acks older than the
   * rejection"). etcd has no such case: its follower panics on a commit beyond its log. The
   * votes it forgot are beyond the leader's reach: refusing such a node at the handshake is the
   * cure for those. Logged once per incident (until it is back at its old match) and counted
   * for /status and /metrics.
   */
  #followerLostEntries(id: NodeId, pr: Progress, last: number): void {
    if (pr.regressedFrom === 0) {
      this.counters.followerLogRegressions++;
      this.#warn(
        `Follower ${id}'s log went backwards: it acknowledged entries up to ${pr.match} in term ${this.term} but its log now ends at ${last} (was its data directory wiped?); no longer counting those entries toward commit, replicating again from ${
          last + 1
        }`,
      );
      pr.regressedFrom = pr.match;
    }
    pr.becomeProbe();
    pr.match = 0;
    pr.next = Math.min(last + 1, this.log.lastIndex() + 1);
  }

  /** Fast backup, leader side: the index after our last entry of the conflicting term. */
  #backupNext(m: AppendResponseMessage): number {
    if (m.hintTerm === 0) return m.hintIndex;
    const log = this.log;
    let lo = log.firstIndex() - 1;
    let hi = Math.min(m.index, log.lastIndex());
    if (hi < lo) return m.hintIndex;
    // Largest j in [lo, hi] with term(j) <= hintTerm (terms are non-decreasing).
    if (log.term(lo) > m.hintTerm) return m.hintIndex;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (log.term(mid) <= m.hintTerm) lo = mid;
      else hi = mid - 1;
    }
    return log.term(lo) === m.hintTerm ? lo + 1 : m.hintIndex;
  }

  /** Sends the entries a follower misses (or a snapshot); returns whether anything was sent. */
  #sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes)) return false;
    const log = this.log;
    if (pr.next > log.lastIndex() + 1) pr.next = log.lastIndex() + 1;
    const prev = pr.next - 1;
    const prevTerm = log.termOrUndefined(prev);
    let ents: Entry[] | undefined;
    if (prevTerm !== undefined) {
      try {
        ents = log.entriesFrom(pr.next, this.cfg.maxMsgBytes);
      } catch (err) {
        if (!(err instanceof CompactedError)) throw err;
      }
    }
    if (prevTerm === undefined || ents === undefined) return this.#sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    const msg: AppendMessage = {
      type: "app",
      from: this.id,
      to,
      term: this.term,
      index: prev,
      logTerm: prevTerm,
      entries: ents,
      commit: log.committed,
    };
    this.#send(msg);
    if (pr.state === "replicate") {
      if (ents.length > 0) {
        const last = ents[ents.length - 1].index;
        let bytes = 0;
        for (const e of ents) bytes += e.data.length;
        pr.next = last + 1;
        pr.inflights.add(last, bytes);
      }
    } else {
      pr.probeSent = true;
    }
    return ents.length > 0 || sendIfEmpty;
  }

  #sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.log.snapshot();
    if (snap.meta.index === 0) return false;
    pr.becomeSnapshot(snap.meta.index);
    pr.transfer = startTransfer(snap);
    this.counters.snapshotsSent++;
    this.#sendSnapshotChunk(to, pr);
    return true;
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const t = pr.transfer;
    if (!t) return;
    this.#send({
      type: "snap",
      from: this.id,
      to,
      term: this.term,
      ...nextChunk(t, this.cfg.snapshotChunkBytes),
    });
  }

  #bcastHeartbeat(): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.#send({
        type: "heartbeat",
        from: this.id,
        to: id,
        term: this.term,
        commit: Math.min(pr.match, this.log.committed),
        ctx: this.#reads.lastCtx,
      });
    }
  }

  /** Raft §5.3/§5.4.2: commit the highest index a quorum holds, if it is from our term. */
  #maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.peers) {
      const pr = this.prs.get(id);
      matches.push(pr ? pr.match : 0);
    }
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    return this.log.maybeCommit(matches[this.quorum - 1], this.term);
  }

  #onCommitAdvanced(): void {
    // Thesis §6.4: reads can be served only once an entry of this term is committed.
    if (this.#reads.committedInTerm(this.log.committed)) this.#releaseReads();
  }

  #appendEntry(data: Uint8Array): number {
    const index = this.log.lastIndex() + 1;
    const entry = { index, term: this.term, data };
    this.log.append([entry]);
    if (isConfEntryData(data)) {
      this.#noteEntries([entry]);
      this.#refreshConf();
    }
    // The leader's own copy counts toward commit once persisted: see onPersisted().
    this.#needBroadcast = true;
    return index;
  }

  /**
   * The driver persisted the log up to (index, term). A leader now counts its own copy of
   * those entries toward the commit quorum; before, only followers' durable copies counted,
   * which lets the driver step acknowledgements while its own write is still in flight.
   */
  onPersisted(index: number, term: number): void {
    if (this.role !== "leader" || this.log.term(index) !== term) return;
    const self = this.prs.get(this.id);
    if (self && self.maybeUpdate(index) && this.#maybeCommit()) this.#onCommitAdvanced();
    this.#syncConf();
  }

  /**
   * Appends a command if leader; returns its index, or 0 when not the leader or while a
   * leadership transfer pauses proposals (etcd drops them then too).
   */
  propose(data: Uint8Array): number {
    if (this.role !== "leader" || this.#transferee !== NONE) return 0;
    return this.#appendEntry(data);
  }

  /**
   * Proposes a single-server configuration change: returns its index, 0 when not the leader,
   * or the reason the change is refused now (see membership.ts refusal()).
   */
  proposeConfChange(change: ConfChange): number | string {
    if (this.role !== "leader") return 0;
    const active = new Set<NodeId>([this.id]);
    const match = new Map<NodeId, number>();
    for (const [id, pr] of this.prs) {
      match.set(id, pr.match);
      const heard = this.#heardAt.get(id);
      if (heard !== undefined && this.#now - heard <= this.cfg.electionTicks) active.add(id);
    }
    const why = refusal({
      conf: this.conf,
      leader: this.id,
      // A configuration entry not yet committed (this leader's, or one an earlier leader left)
      // is pending: it commits, or is overwritten, before another may be proposed.
      pending: this.confIndex > this.log.committed,
      pendingChange: this.confIndex > this.log.committed
        ? this.#describeConfAt(this.confIndex)
        : undefined,
      ownTermCommitted: this.log.term(this.log.committed) === this.term,
      transferring: this.#transferee !== NONE,
      active,
      match,
      lastIndex: this.log.lastIndex(),
    }, change);
    if (why !== undefined) return why;
    const conf = applyChange(this.conf, change);
    return this.#appendEntry(encodeConfEntry({ conf, change }));
  }

  /** "added node 4 (h:4) as a learner at index 12": the configuration entry at `index`. */
  #describeConfAt(index: number): string {
    // An uncommitted entry is never compacted, so it is in the log.
    const e = this.log.slice(index, index + 1)[0];
    return `${describeChange(decodeConfEntry(e.data).change)} at index ${index}`;
  }

  /**
   * Starts handing leadership to voter `to` (NONE: the most up-to-date voter), as etcd's
   * MsgTransferLeader does: proposals pause, the target is brought up to date, then told to
   * campaign at once (timeoutNow). Returns the target, or a reason when it cannot start.
   * The transfer is abandoned after an election timeout.
   */
  transferLeadership(to: NodeId): NodeId | string {
    if (this.role !== "leader") return "This node is not the leader";
    const target = to === NONE ? this.#bestVoter() : to;
    if (target === this.id) return `Node ${target} is already the leader`;
    if (target === NONE) return "There is no other voter to hand leadership to";
    if (!this.peers.includes(target)) return `Node ${target} is not a voter`;
    if (this.#transferee === target) return target;
    this.#startTransfer(target);
    return target;
  }

  #startTransfer(target: NodeId): void {
    const pr = target === NONE ? undefined : this.prs.get(target);
    if (!pr) return;
    this.#transferee = target;
    this.#transferElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.#sendTimeoutNow(target);
    else this.#sendAppend(target, pr, true);
  }

  /** The tick counter, and when the leader last heard from `id` (undefined: not since leading). */
  heardAgo(id: NodeId): number | undefined {
    const at = this.#heardAt.get(id);
    return at === undefined ? undefined : this.#now - at;
  }

  /**
   * Whether flushBroadcast() would send anything: entries appended or reads registered this
   * turn, on a leader. A query: it changes nothing.
   */
  hasPendingBroadcast(): boolean {
    return this.role === "leader" && (this.#needBroadcast || this.#reads.heartbeatDue);
  }

  /**
   * Sends what this turn's proposals and reads need: one append per follower for the whole
   * batch of entries, and one heartbeat round for all the ReadIndex requests.
   */
  flushBroadcast(): void {
    if (this.#reads.takeHeartbeatDue()) {
      // Its context is the newest read's, so the acks confirm every read registered before.
      if (this.role === "leader") this.#bcastHeartbeat();
    }
    if (!this.#needBroadcast) return;
    this.#needBroadcast = false;
    if (this.role !== "leader") return;
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      while (this.#sendAppend(id, pr, false)) {
        if (pr.state !== "replicate") break;
      }
    }
  }

  /**
   * Starts a ReadIndex round (thesis §6.4); returns its context (> 0), or 0 when not leader.
   * The confirmed read index appears in readStates once a quorum acknowledged leadership.
   */
  readIndex(): number {
    if (this.role !== "leader") return 0;
    const committedInTerm = this.log.term(this.log.committed) === this.term;
    const ctx = this.#reads.add(committedInTerm ? this.log.committed : -1, this.quorum > 1);
    if (this.quorum === 1) this.#releaseReads();
    return ctx;
  }

  #releaseReads(): void {
    this.#reads.release((ctx) => {
      let acks = 0;
      for (const id of this.peers) {
        const pr = this.prs.get(id);
        if (id === this.id || (pr && pr.ackCtx >= ctx)) acks++;
      }
      return acks >= this.quorum;
    }, this.readStates);
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== "leader") return;
    const pr = this.prs.get(id);
    if (!pr || id === this.id) return;
    if (pr.state === "replicate") pr.becomeProbe();
    else if (pr.state === "snapshot" && pr.transfer) pr.transfer.offset = pr.transfer.acked;
  }
}
