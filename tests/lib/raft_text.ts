/**
 * Raft messages as one line of text, the same in the simulator's failure reports and in the
 * trace tests' expected output (tests/raft/testdata), so both read alike.
 */
import type { Message } from "../../raft/types.ts";

/** A one-line rendering of a message: type, sender>receiver, term and the fields that matter. */
export function describeMessage(m: Message): string {
  const head = `${m.type} ${m.from}>${m.to} t${m.term}`;
  switch (m.type) {
    case "app": {
      const n = m.entries.length;
      const ents = n === 0 ? "" : ` ents=${m.entries[0].index}..${m.entries[n - 1].index}`;
      return `${head} prev=${m.index}/${m.logTerm}${ents} commit=${m.commit}`;
    }
    case "appResp":
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.hintIndex}/${m.hintTerm}`
        : `${head} index=${m.index}`;
    case "vote":
    case "preVote":
      return `${head} last=${m.index}/${m.logTerm}${m.transfer ? " transfer" : ""}`;
    case "voteResp":
    case "preVoteResp":
      return `${head} ${m.reject ? "reject" : "grant"}`;
    case "heartbeat":
      return `${head} commit=${m.commit} ctx=${m.ctx}`;
    case "heartbeatResp":
      return m.reject ? `${head} ctx=${m.ctx} reject last=${m.index}` : `${head} ctx=${m.ctx}`;
    case "snap":
      return `${head} snap=${m.index}/${m.logTerm} bytes=${m.offset}+${m.data.length}/${m.total}${
        m.done ? " done" : ""
      }`;
    case "snapResp":
      return `${head} snap=${m.index} offset=${m.offset}${m.reject ? " reject" : ""}`;
    case "timeoutNow":
      return head;
  }
}
