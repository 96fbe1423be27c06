/**
 * Whether two peers may talk, judged by the cluster identity each states in the peer handshake:
 * its cluster id (once known), whether it was started with --join, and whether its data
 * directory holds any Raft state. The rule (etcd checks its cluster id on every peer message):
 * - both know an id: they must be the same;
 * - one knows an id and the other does not: the other must be a member being added (--join) or
 *   a node that already took part in this cluster's first term (it has Raft state: the id is
 *   committed after the first election and reaches the members one by one); an empty data
 *   directory started without --join (a wiped node, a new machine given a member's id, a late
 *   bootstrap node) is refused, so it cannot vote or be counted on;
 * - neither knows one: a cluster still forming its first term, accepted.
 */

/** What one side states about itself. */
export interface ClusterIdentityClaim {
  /** The cluster id from its configuration, when it has one. */
  clusterId?: string;
  /** Started with --join: a member being added. */
  joining: boolean;
  /** Its data directory held no Raft state when it started. */
  fresh: boolean;
}

/**
 * Why `local` must refuse (or abandon) a connection with `remote` (node `remoteId`), or undefined
 * when they may talk. The message names both ids and what to do.
 */
export function clusterMismatch(
  local: ClusterIdentityClaim,
  remote: ClusterIdentityClaim,
  remoteId: number,
): string | undefined {
  if (local.clusterId && remote.clusterId) {
    if (local.clusterId === remote.clusterId) return undefined;
    return `Cluster id mismatch: this node belongs to cluster ${local.clusterId}, node ${remoteId} ` +
      `to cluster ${remote.clusterId} (a data directory from another cluster, or a wrong --peers)`;
  }
  if (local.clusterId && !remote.joining && remote.fresh) {
    return `Node ${remoteId} has an empty data directory and was not started with --join: it ` +
      `cannot take part in cluster ${local.clusterId} by accident; add it with raftmr member add ` +
      `and start it with --join (a wiped node also needs a new id)`;
  }
  if (remote.clusterId && !local.joining && local.fresh) {
    return `This node has an empty data directory and was not started with --join, but node ` +
      `${remoteId} belongs to cluster ${remote.clusterId}: add this node with raftmr member add ` +
      `and start it with --join`;
  }
  return undefined;
}
