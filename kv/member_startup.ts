/**
 * Start-up decisions about membership for `raftmr serve`: which configuration a data directory
 * holds, whether `--peers` and `--join` agree with it (the node refuses to start, saying how,
 * when they do not), and the address each peer is dialed at.
 *
 * The rule, as etcd has for --initial-cluster: --peers forms a new cluster. Once the cluster's
 * first leader has committed its bootstrap configuration entry (or any later change), the
 * membership comes from the log and snapshots of the data directory, and --peers only supplies
 * addresses. It then "disagrees" when it names a node that is not a member of the stored
 * configuration (a removed node, or one never added): that is a stale or mistyped flag, and
 * starting anyway would have this node dial and report peers the cluster does not have.
 * Members missing from --peers are fine: their addresses are in the configuration.
 */
import type { HostPort } from "../net/host_port.ts";
import { decodeConfEntry, isConfEntryData, isMember } from "../raft/membership.ts";
import type { Storage } from "../raft/storage.ts";
import type { ConfState } from "../raft/types.ts";
import { removedMessage } from "./removal_marker.ts";

/** The membership a data directory recorded, and whether it holds any Raft state at all. */
export interface StoredMembership {
  /** The configuration in force at the commit index, or undefined when none was recorded. */
  conf?: ConfState;
  /** Index of the entry (or snapshot) that recorded it. */
  index: number;
  /** Whether the directory holds a log, a vote or a snapshot (false: a fresh node). */
  hasState: boolean;
}

/**
 * Reads the last committed configuration from a storage's snapshot and committed log; with
 * `uncommitted`, the newest configuration in the whole log instead, the one the Raft core puts
 * in force at start (thesis §4.1). The two differ after kill -9: a commit index that changed
 * alone is saved lazily (persist/disk_storage.ts), so the disk can hold a committed
 * configuration entry above the commit index it recorded.
 */
export function storedMembership(
  storage: Storage,
  options: { uncommitted?: boolean } = {},
): StoredMembership {
  const { hardState } = storage.initialState();
  const snap = storage.snapshot();
  const hasState = hardState.term > 0 || storage.lastIndex() > 0 || snap.meta.index > 0;
  let conf: ConfState | undefined = snap.meta.index > 0 ? snap.meta.conf : undefined;
  let index = snap.meta.index;
  const last = options.uncommitted
    ? storage.lastIndex()
    : Math.min(hardState.commit, storage.lastIndex());
  const first = storage.firstIndex();
  if (first <= last) {
    for (const e of storage.entries(first, last + 1)) {
      if (!isConfEntryData(e.data)) continue;
      conf = decodeConfEntry(e.data).conf;
      index = e.index;
    }
  }
  return { conf, index, hasState };
}

function list(ids: number[]): string {
  return ids.length === 0 ? "none" : ids.join(", ");
}

/**
 * Why this node must not start with these flags on this data directory, or undefined when it
 * may. `join` is --join; `peers` is --peers.
 */
export function startupRefusal(
  id: number,
  stored: StoredMembership,
  peers: ReadonlyMap<number, HostPort>,
  join: boolean,
): string | undefined {
  const conf = stored.conf;
  if (!conf) return undefined;
  const members = [...conf.peers, ...(conf.learners ?? [])].sort((a, b) => a - b);
  if ((conf.removed ?? []).includes(id)) {
    return removedMessage({ id, clusterId: conf.clusterId, index: stored.index });
  }
  const strangers = [...peers.keys()].filter((p) => p !== id && !isMember(conf, p));
  if (strangers.length > 0) {
    const removed = strangers.filter((p) => (conf.removed ?? []).includes(p));
    const detail = removed.length > 0 ? ` (removed: ${list(removed)})` : "";
    return `Stored membership disagrees with --peers: --peers lists ${list(strangers)}${detail}, ` +
      `which the configuration at index ${stored.index} does not have (members: ${
        list(members)
      }); ` +
      `once a node has data its membership comes from its log: drop them from --peers, or add ` +
      `new nodes with raftmr member add`;
  }
  if (!join && !isMember(conf, id) && members.length > 0) {
    return `Node ${id} is not a member of the stored configuration (members: ${list(members)}): ` +
      `if it is being added, start it with --join`;
  }
  return undefined;
}

/** Parses "host:port" from a configuration's address record; undefined when malformed. */
export function parseAddr(addr: string): HostPort | undefined {
  const colon = addr.lastIndexOf(":");
  const port = Number(addr.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  let hostname = addr.slice(0, colon);
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  return { hostname, port };
}

/**
 * The address book the transport dials: every member of `conf` (at its --peers address if
 * given, else the one the configuration recorded) plus the --peers entries that are not known
 * to be removed (a joining node knows no members yet and needs them to reach the leader).
 */
export function peerAddresses(
  conf: ConfState | undefined,
  peers: ReadonlyMap<number, HostPort>,
): Map<number, HostPort> {
  const out = new Map<number, HostPort>();
  const removed = new Set(conf?.removed ?? []);
  for (const [id, a] of peers) if (!removed.has(id)) out.set(id, a);
  if (conf) {
    for (const id of [...conf.peers, ...(conf.learners ?? [])]) {
      if (out.has(id)) continue;
      const recorded = conf.addrs?.[id];
      const a = recorded === undefined ? undefined : parseAddr(recorded);
      if (a) out.set(id, a);
    }
  }
  return out;
}
