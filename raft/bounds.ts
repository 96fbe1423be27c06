/**
 * The one rule for terms and log indexes: a value the node accepts is one it can also increment,
 * add to another and send, exactly. JavaScript numbers are exact only up to 2^53 - 1, so a term
 * of 2^53 - 1 received from anyone and saved would leave every later election needing a term
 * nobody can represent (the cluster stays leaderless for good). The bound sits far below that:
 * 2^50 terms is an election a millisecond for 35,000 years, 2^50 entries a million a second for
 * 35 years, and a sum of two bounded values is still exact. The transport's validator
 * (validateMessage) and the core's step() both apply messageOutOfBounds, so a message past the
 * bound is dropped before anything in it can be persisted.
 */
import type { Message } from "./types.ts";

/** The largest term or log index the node accepts, stores or sends. */
export const MAX_TERM_OR_INDEX: number = 2 ** 50;

/** Whether `n` is a term or log index the node accepts: an integer in [0, MAX_TERM_OR_INDEX]. */
export function isTermOrIndex(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= MAX_TERM_OR_INDEX;
}

function check(field: string, n: number): string | undefined {
  return isTermOrIndex(n) ? undefined : `${field} ${n} is past the bound for terms and indexes`;
}

/**
 * Returns why `m` carries a term or index the node must not accept (naming the first such
 * field), or undefined when every term and index in it is within the bound.
 */
export function messageOutOfBounds(m: Message): string | undefined {
  const t = check("term", m.term);
  if (t) return t;
  switch (m.type) {
    case "app": {
      const e = check("index", m.index) ?? check("logTerm", m.logTerm) ??
        check("commit", m.commit);
      if (e) return e;
      // Entries are contiguous after `index`: the last one has the largest index.
      for (const entry of m.entries) {
        const bad = check("entry term", entry.term);
        if (bad) return bad;
      }
      const n = m.entries.length;
      return n === 0 ? undefined : check("entry index", m.entries[n - 1].index);
    }
    case "appResp":
      return check("index", m.index) ?? check("hintIndex", m.hintIndex) ??
        check("hintTerm", m.hintTerm);
    case "vote":
    case "preVote":
    case "snap":
      return check("index", m.index) ?? check("logTerm", m.logTerm);
    case "heartbeat":
      return check("commit", m.commit);
    case "heartbeatResp":
    case "snapResp":
      return check("index", m.index);
    case "voteResp":
    case "preVoteResp":
    case "timeoutNow":
      return undefined;
  }
}
