/**
 * The metrics a Raft peer exports on GET /metrics, declared in one place. Most are pulled from
 * their sources at scrape time (the node's counters, the storage's sizes); latencies are pushed
 * into histograms as they are measured. Adding a metric is one registration below.
 */
import type { RaftNode } from "../raft/node.ts";
import { decadeBuckets, exponentialBuckets, type Histogram, Registry } from "../status/metrics.ts";
import { registerProcessMetrics } from "../status/process_metrics.ts";

/** Where the pulled metrics come from; the daemon hands these over once they exist. */
export interface NodeMetricSources {
  node: RaftNode;
  walBytes: () => number;
  walAllocatedBytes: () => number;
  keys: () => number;
  forwardedRequests: () => number;
  /** Whether each other member answered its last probe (undefined: not probed yet). */
  peerReachable: () => Iterable<[number, boolean | undefined]>;
}

/**
 * Fsync latency buckets, 50 us to 10 s: ours take well under 1 ms on a good disk, and etcd starts
 * warning at 1 s, so the range covers both a healthy and a dying disk.
 */
export const FSYNC_BUCKETS: number[] = decadeBuckets(0.00005, 10);

/** Peer round-trip buckets, 100 us to 1.6 s (doubling, the range etcd's prober uses). */
export const RTT_BUCKETS: number[] = exponentialBuckets(0.0001, 2, 15);

/** Snapshot file write buckets, 1 ms to 25 s (a snapshot is the whole state machine). */
export const SNAPSHOT_BUCKETS: number[] = decadeBuckets(0.001, 25);

/** A peer's registry: create it before storage opens (fsync is observed from the start). */
export class NodeMetrics {
  /** Everything GET /metrics renders for this node. */
  readonly registry: Registry = new Registry();
  /** WAL fdatasync latency in seconds, fed by the storage's onSync callback. */
  readonly fsync: Histogram;
  /** Snapshot file writes in seconds, fed by the storage's onSnapshotSave callback. */
  readonly snapshotSave: Histogram;
  /** Round trips of the status probe to each peer, in seconds, by `to` (the peer's id). */
  readonly peerRtt: Histogram;

  constructor() {
    const r = this.registry;
    this.fsync = r.histogram({
      name: "raftmr_wal_fsync_duration_seconds",
      help: "Latency of WAL fdatasync calls",
      buckets: FSYNC_BUCKETS,
    });
    this.snapshotSave = r.histogram({
      name: "raftmr_snapshot_save_duration_seconds",
      help: "Time to write and sync one snapshot file",
      buckets: SNAPSHOT_BUCKETS,
    });
    this.peerRtt = r.histogram({
      name: "raftmr_peer_round_trip_time_seconds",
      help: "Round trip of a status probe to a peer over the peer connection",
      labels: ["to"],
      buckets: RTT_BUCKETS,
    });
    registerProcessMetrics(r);
  }

  /** Registers the pulled metrics; call once, when the node and its storage exist. */
  attach(s: NodeMetricSources): void {
    const r = this.registry;
    const m = () => s.node.metrics;
    const st = () => s.node.status();
    r.gaugeFunc(
      { name: "raftmr_server_has_leader", help: "1 when this node knows a leader, else 0" },
      () => (s.node.leader === 0 ? 0 : 1),
    );
    r.counterFunc(
      { name: "raftmr_proposals_total", help: "Proposals made on this node" },
      () => m().proposals,
    );
    r.gaugeFunc(
      { name: "raftmr_proposals_pending", help: "Proposals accepted and not yet applied" },
      () => s.node.pendingProposals,
    );
    r.counterFunc(
      {
        name: "raftmr_proposals_failed_total",
        help: "Proposals that failed after being accepted (overwritten, leader lost, stopped)",
      },
      () => m().proposalsDropped,
    );
    r.counterFunc({ name: "raftmr_commits_total", help: "Entries committed" }, () => st().commit);
    r.counterFunc({ name: "raftmr_applies_total", help: "Entries applied" }, () => m().applied);
    r.counterFunc(
      { name: "raftmr_elections_total", help: "Elections this node started" },
      () => m().electionsStarted,
    );
    r.counterFunc(
      { name: "raftmr_leader_changes_total", help: "Leader changes seen" },
      () => m().leaderChanges,
    );
    r.counterFunc(
      { name: "raftmr_snapshots_total", help: "Snapshots taken or installed" },
      () => m().snapshotsTaken + m().snapshotsInstalled,
    );
    r.counterFunc(
      { name: "raftmr_forwarded_requests_total", help: "Requests forwarded to the leader" },
      s.forwardedRequests,
    );
    r.counterFunc(
      {
        name: "raftmr_follower_log_regressions_total",
        help: "Followers found (while leading) to hold less log than they had acknowledged",
      },
      () => m().followerLogRegressions,
    );
    r.gaugeFunc({ name: "raftmr_term", help: "Current term" }, () => st().term);
    r.gaugeFunc(
      { name: "raftmr_is_leader", help: "1 when this node leads" },
      () => (s.node.role === "leader" ? 1 : 0),
    );
    r.gaugeFunc({ name: "raftmr_applied_index", help: "Last applied index" }, () => st().applied);
    r.gaugeFunc({ name: "raftmr_commit_index", help: "Last committed index" }, () => st().commit);
    r.gaugeFunc(
      { name: "raftmr_wal_bytes", help: "Bytes of records in the WAL segments" },
      s.walBytes,
    );
    r.gaugeFunc(
      {
        name: "raftmr_wal_allocated_bytes",
        help: "Size of the WAL segment files, preallocated zeros included",
      },
      s.walAllocatedBytes,
    );
    r.gaugeFunc({ name: "raftmr_keys", help: "Keys in the store" }, s.keys);
    r.gaugeFunc(
      {
        name: "raftmr_peer_reachable",
        help: "1 when the peer answered its last status probe, else 0",
        labels: ["to"],
      },
      () =>
        [...s.peerReachable()].filter(([, up]) => up !== undefined).map(([id, up]) => ({
          labels: { to: String(id) },
          value: up ? 1 : 0,
        })),
    );
    r.gaugeFunc(
      { name: "raftmr_voters", help: "Voters in the configuration in force" },
      () => st().voters.length,
    );
    r.gaugeFunc(
      { name: "raftmr_learners", help: "Learners in the configuration in force" },
      () => st().learners.length,
    );
    r.gaugeFunc(
      { name: "raftmr_config_index", help: "Log index of the configuration in force" },
      () => st().configIndex,
    );
    r.counterFunc(
      { name: "raftmr_config_changes_total", help: "Configuration entries applied on this node" },
      () => m().confChanges,
    );
    r.counterFunc(
      { name: "raftmr_leader_transfers_total", help: "Leadership transfers this node started" },
      () => m().leaderTransfers,
    );
  }
}
