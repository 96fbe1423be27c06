/**
 * When a new leader may schedule jobs: only once its job table holds every entry committed
 * before its term. A node elected leader has every committed entry in its log (Raft §5.4.1) but
 * does not know which of them are committed, so it may not have applied them yet: the dead
 * leader's last task commits and worker deaths can still be pending. A scheduler rebuilt from
 * that table would hand out maps the log already commits (and never learn they are done: their
 * reports are refused as duplicates). Raft's answer for reads (§8, thesis §6.4) applies here:
 * wait until the leader's own first entry of the term (its no-op) is applied; every earlier entry
 * is then applied too.
 */

/** What the peer knows of its Raft node, read in one go. */
export interface LeaderState {
  isLeader: boolean;
  term: number;
  /** The last entry applied to the state machines here. */
  applied: number;
  /** The last entry in this node's log (applied or not). */
  lastIndex: number;
}

/** Decides, call by call, whether this node leads with an up-to-date job table. */
export class JobLeadership {
  /** The term whose start is tracked, or undefined while not leading. */
  #term: number | undefined;
  /** The index to apply before scheduling in #term. */
  #until = 0;
  #ready = false;

  /**
   * Returns the current term when this node leads and has applied every entry up to its log's
   * end as first seen in this term (which includes the term's no-op), else undefined.
   */
  term(state: LeaderState): number | undefined {
    if (!state.isLeader) {
      this.#term = undefined;
      return undefined;
    }
    if (state.term !== this.#term) {
      // The first look at this term: the no-op a new leader appends (raft/raft.ts becomeLeader)
      // is already in the log, so lastIndex is at or past it.
      this.#term = state.term;
      this.#until = state.lastIndex;
      this.#ready = false;
    }
    if (!this.#ready && state.applied >= this.#until) this.#ready = true;
    return this.#ready ? state.term : undefined;
  }
}
