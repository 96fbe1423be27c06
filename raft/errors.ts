/** Catchable errors the Raft driver hands to callers of propose() and readIndex(). */
import type { NodeId } from "./types.ts";

/** This node is not the leader; `leaderHint` is the leader it knows of (0 when none). */
export class NotLeaderError extends Error {
  readonly leaderHint: NodeId;
  constructor(leaderHint: NodeId) {
    super(leaderHint ? `Not the leader: try node ${leaderHint}` : "Not the leader: leader unknown");
    this.name = "NotLeaderError";
    this.leaderHint = leaderHint;
  }
}

/**
 * The proposal's fate is unknown to this node: it was overwritten, leadership was lost before it
 * committed, or the node stopped. It may still commit elsewhere, so retry idempotently.
 */
export class ProposalDroppedError extends Error {
  constructor(reason: string) {
    super(`Proposal dropped: ${reason}`);
    this.name = "ProposalDroppedError";
  }
}

/** The node was stopped (or failed) before the request finished. */
export class NodeStoppedError extends Error {
  constructor() {
    super("Raft node is stopped");
    this.name = "NodeStoppedError";
  }
}

/** The leader refused a membership change or a leadership transfer; `message` says why. */
export class ChangeRefusedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "ChangeRefusedError";
  }
}
