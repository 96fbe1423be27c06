/**
 * The cluster id: the first leader of a new cluster draws a random id and commits it, with the
 * bootstrap members' addresses, as a configuration entry (like the configuration itself, it then
 * lives in every node's log and snapshots, so in every data directory). A leader of a cluster
 * that has one does nothing.
 *
 * It waits until every voter has answered it: the peer handshake refuses a node with an empty
 * data directory that was not started with --join once the cluster has an id (net/
 * cluster_match.ts), and a bootstrap member that is merely slow to start must not be taken for
 * a wiped one. (etcd's members all compute the same cluster id from --initial-cluster instead;
 * ours is random, so two clusters with the same --peers still differ.)
 */
import type { HostPort } from "../net/host_port.ts";
import { ChangeRefusedError, NotLeaderError } from "../raft/errors.ts";
import type { RaftNode } from "../raft/node.ts";

/** Options of ClusterIdentity. */
export interface ClusterIdentityOptions {
  node: RaftNode;
  /** --peers: the bootstrap members' addresses. */
  peers: ReadonlyMap<number, HostPort>;
  log: (line: string) => void;
  stopping: () => boolean;
}

const RETRY_MS = 20;

/** Draws a cluster id: 16 random hex digits (64 bits, so two clusters never share one). */
export function newClusterId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Makes sure the cluster has an id once this node leads; see the file comment. */
export class ClusterIdentity {
  readonly #o: ClusterIdentityOptions;
  #running = false;

  constructor(options: ClusterIdentityOptions) {
    this.#o = options;
  }

  /** The cluster id this node knows (from its committed configuration), if any. */
  get id(): string | undefined {
    return this.#o.node.membership()?.conf.clusterId;
  }

  /** Called when this node becomes leader: commits a new cluster id if there is none yet. */
  onLeader(): void {
    if (this.#running || this.id !== undefined) return;
    this.#running = true;
    this.#run().finally(() => this.#running = false);
  }

  async #run(): Promise<void> {
    const node = this.#o.node;
    const addrs: Record<string, string> = {};
    for (const [id, a] of this.#o.peers) addrs[id] = `${a.hostname}:${a.port}`;
    const clusterId = newClusterId();
    while (!this.#o.stopping() && node.role === "leader" && this.id === undefined) {
      const voters = node.membership()?.conf.peers ?? [];
      if (voters.some((v) => v !== node.id && node.heardAgo(v) === undefined)) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS * 5));
        continue;
      }
      try {
        await node.changeMembership({ type: "bootstrap", clusterId, addrs });
        this.#o.log(`Formed cluster ${this.id}`);
        return;
      } catch (error) {
        // Until this leader's first entry commits (or while a change is pending) it must wait.
        if (error instanceof ChangeRefusedError && /retry/.test(error.message)) {
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
          continue;
        }
        if (!(error instanceof NotLeaderError)) {
          this.#o.log(`Could not record the cluster id: ${(error as Error).message}`);
        }
        return;
      }
    }
  }
}
