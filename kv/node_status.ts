/**
 * The shape of a peer's GET /status: what the node reports about itself and the members it
 * knows. The daemon (kv/server.ts) fills it, the dashboard (kv/dashboard.ts) and operators'
 * scripts read it; every field is plain JSON.
 */
import type { RaftMetrics } from "../raft/node.ts";
import type { ProgressStatus } from "../raft/raw_node.ts";
import type { JobView } from "../mr/job_view.ts";

/** What this node last heard from one member of the cluster (itself included). */
export interface MemberReport {
  id: number;
  /** Its peer (Raft) address, from --peers. */
  peer: string;
  /** Its HTTP address, when known (this node's own; others' once they answered a probe). */
  http?: string;
  /** "self", "up" (answered the last probe), "down" (did not) or "unknown" (not probed). */
  state: "self" | "up" | "down" | "unknown";
  /** Its role, term and indexes as it reported them (absent while down or never reached). */
  role?: string;
  term?: number;
  commit?: number;
  applied?: number;
  /** Round trip of the last probe, in milliseconds. */
  rttMs?: number;
  /** Milliseconds since it last answered (absent when it never did). */
  lastSeenAgoMs?: number;
  /** The last probe's error, while down. */
  error?: string;
}

/** A peer's GET /status body. */
export interface NodeReport {
  id: number;
  role: string;
  term: number;
  /** The leader's id, 0 when none is known. */
  leader: number;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  /** Per-follower replication progress, on the leader only. */
  progress?: Record<string, ProgressStatus>;
  /** The voters of the configuration in force (absent in test doubles). */
  voters?: number[];
  /** Its learners: they replicate but neither vote nor count. */
  learners?: number[];
  /** Log index of the configuration entry (or snapshot) in force. */
  configIndex?: number;
  /** The cluster id its first leader committed. */
  clusterId?: string;
  /** The last configuration changes this node saw commit, newest last. */
  configChanges?: { index: number; change: string }[];
  /** The voter a leadership transfer is handing over to (leader only), 0 when none. */
  transferee?: number;
  walBytes: number;
  walAllocatedBytes: number;
  counters: RaftMetrics;
  keys: number;
  sessions: number;
  /** Peer addresses by node id: --peers, plus members the configuration added. */
  peers: Record<string, string>;
  /** This node's HTTP address. */
  http: string;
  /** Every member as this node sees it, itself first (absent in test doubles). */
  members?: MemberReport[];
  /** The program version. */
  version?: string;
  /** Milliseconds since the process started serving. */
  uptimeMs?: number;
  /** The MapReduce jobs of the replicated table (running counts on the leader only). */
  jobs?: JobView[];
}
