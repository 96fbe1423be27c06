/**
 * Flow control: the leader's view of each follower (Raft Figure 2's nextIndex and matchIndex)
 * and how many appends it may have in flight to it. Modelled on etcd's tracker/progress.go and
 * tracker/inflights.go: a follower is probed one append at a time until its match is known,
 * then fed a bounded pipeline, or sent a snapshot when the log it needs is compacted.
 */
import type { SnapshotTransfer } from "./snapshot_chunks.ts";

/** How the leader is currently feeding one follower. */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** A FIFO of in-flight appends (last index and bytes of each) bounding pipelining. */
export class Inflights {
  #idx: number[] = [];
  #size: number[] = [];
  #head = 0;
  /** Entry bytes of the appends in flight. */
  bytes = 0;

  /** Appends in flight. */
  get count(): number {
    return this.#idx.length - this.#head;
  }

  /** Records an append whose last entry is `last`, carrying `bytes` of entry data. */
  add(last: number, bytes: number): void {
    this.#idx.push(last);
    this.#size.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every append whose last index is <= index (acknowledged). */
  freeLE(index: number): void {
    while (this.#head < this.#idx.length && this.#idx[this.#head] <= index) {
      this.bytes -= this.#size[this.#head];
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > this.#idx.length) {
      this.#idx = this.#idx.slice(this.#head);
      this.#size = this.#size.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Forgets the oldest in-flight append (used to unblock a stalled pipeline). */
  freeFirst(): void {
    if (this.count === 0) return;
    this.freeLE(this.#idx[this.#head]);
  }

  /** Forgets every append in flight (a state change starts the pipeline over). */
  reset(): void {
    this.#idx = [];
    this.#size = [];
    this.#head = 0;
    this.bytes = 0;
  }
}

/** The leader's view of one peer (Raft Figure 2 nextIndex/matchIndex plus flow control). */
export class Progress {
  match = 0;
  next = 1;
  state: ProgressState = "probe";
  /** In probe state: one append is out, wait for its answer or a heartbeat reply. */
  probeSent = false;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Snapshot index being installed while in snapshot state. */
  pendingSnapshot = 0;
  /** Highest ReadIndex context this peer acknowledged in the current term. */
  ackCtx = 0;
  /**
   * While > 0: the match this peer had acknowledged before its log went backwards; cleared once
   * it holds that much again.
   */
  regressedFrom = 0;
  /** The InstallSnapshot transfer running while in snapshot state. */
  transfer: SnapshotTransfer | undefined;
  /** The newest incarnation of the peer this leader heard from (0: none reported). */
  newestInc = 0;
  /** Replies from incarnations below this one are ignored (see lostEntriesReportedBy). */
  minInc = 0;
  readonly inflights: Inflights = new Inflights();

  /** A fresh progress that will probe from `next`. */
  constructor(next: number) {
    this.next = next;
  }

  /**
   * Notes a reply from incarnation `inc` (0 or undefined: the peer reports none) and returns
   * whether it must be ignored: it was sent by a process older than the one that reported its
   * log went backwards.
   */
  staleIncarnation(inc: number | undefined): boolean {
    if (!inc) return false;
    if (inc < this.minInc) return true;
    if (inc > this.newestInc) this.newestInc = inc;
    return false;
  }

  /**
   * Incarnation `inc` reports that the peer's log ends below what it acknowledged. Returns
   * false when an older process sent that report (a newer one has spoken since: its log is
   * what counts now). Otherwise every older incarnation wrote to storage that is gone, so
   * their replies still in flight (an ack sent just before a wipe) are ignored from now on.
   * Replies without an incarnation cannot be told apart and always count.
   */
  lostEntriesReportedBy(inc: number | undefined): boolean {
    if (!inc) return true;
    if (inc < this.newestInc) return false;
    this.minInc = inc;
    return true;
  }

  /** Back to one append at a time, from just after what the peer is known to hold. */
  becomeProbe(): void {
    if (this.state === "snapshot") {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = "probe";
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.transfer = undefined;
    this.inflights.reset();
  }

  /** The peer's match is known: pipeline appends to it within the inflight bounds. */
  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.transfer = undefined;
    this.inflights.reset();
  }

  /** The peer needs the snapshot at `index`: no appends until it is installed. */
  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Records that the peer holds our log up to n; returns whether match advanced. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
      if (this.regressedFrom > 0 && n >= this.regressedFrom) this.regressedFrom = 0;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Whether the leader must hold appends to this peer for now (flow control). */
  isPaused(maxMsgs: number, maxBytes: number): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.count >= maxMsgs || this.inflights.bytes >= maxBytes;
      case "snapshot":
        return true;
    }
  }
}
