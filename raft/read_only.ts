/**
 * The ReadIndex queue (thesis §6.4), modelled on etcd's read_only.go: a leader records the
 * commit index when a read arrives, confirms it is still leader with one heartbeat round, and
 * then releases the read at that index. Reads registered in one turn share one round: the round
 * carries the newest read's context, and an acknowledgement of context c confirms every read
 * with a context up to c.
 */
import type { ReadState } from "./types.ts";

/** A ReadIndex request waiting for a quorum of heartbeat acknowledgements. */
interface PendingRead {
  ctx: number;
  /** Commit index at request time; -1 until the leader has committed an entry of its term. */
  index: number;
}

/** The leader's pending reads, in arrival order; contexts only grow. */
export class ReadOnly {
  #seq = 0;
  #pending: PendingRead[] = [];
  #heartbeatDue = false;

  /** The newest context handed out: what a heartbeat round asks followers to confirm. */
  get lastCtx(): number {
    return this.#seq;
  }

  /** Whether a read is waiting for this turn's heartbeat round (see takeHeartbeatDue). */
  get heartbeatDue(): boolean {
    return this.#heartbeatDue;
  }

  /** Forgets every pending read (a role or term change: their leadership is no longer known). */
  reset(): void {
    this.#pending = [];
    this.#heartbeatDue = false;
  }

  /**
   * Registers a read at commit index `index` (-1 when the leader has not yet committed an entry
   * of its term); returns its context (> 0). `needRound` asks for a heartbeat round this turn.
   */
  add(index: number, needRound: boolean): number {
    const ctx = ++this.#seq;
    this.#pending.push({ ctx, index });
    if (needRound) this.#heartbeatDue = true;
    return ctx;
  }

  /** Returns whether a heartbeat round is due, and clears the request. */
  takeHeartbeatDue(): boolean {
    const due = this.#heartbeatDue;
    this.#heartbeatDue = false;
    return due;
  }

  /**
   * The leader committed its first entry of the term at `committed`: reads that waited for it
   * read from there. Returns whether any read was waiting.
   */
  committedInTerm(committed: number): boolean {
    let any = false;
    for (const r of this.#pending) {
      if (r.index < 0) {
        r.index = committed;
        any = true;
      }
    }
    return any;
  }

  /**
   * Moves the reads a quorum confirmed into `out`, in order, stopping at the first that is not
   * confirmed yet (or still waits for the term's first commit).
   */
  release(confirmed: (ctx: number) => boolean, out: ReadState[]): void {
    while (this.#pending.length > 0) {
      const r = this.#pending[0];
      if (r.index < 0 || !confirmed(r.ctx)) return;
      this.#pending.shift();
      out.push({ ctx: r.ctx, index: r.index });
    }
  }
}
