/**
 * Cluster membership as data: the configuration (voters, learners, their addresses, the cluster
 * id), how a configuration entry is encoded in the Raft log, how one single-server change turns a
 * configuration into the next, and the leader-side rules that decide whether a change may be
 * proposed now. Pure: no clock, no I/O; raft.ts applies what this file decides.
 *
 * Model: the whole configuration travels in each configuration entry (as hashicorp/raft's
 * Configuration does), so applying an entry is replacing the configuration, and a snapshot header
 * holds exactly one. A node uses the newest configuration in its log, committed or not (thesis
 * §4.1, as hashicorp/raft's "latest" configuration): etcd-io/raft applies a ConfChange only once
 * committed, but then a leader that dies right after committing a promotion can leave the others
 * unable to elect anyone (they still count the dead leader and not the promoted learner; our
 * simulator found it). With one change in flight at a time and the own-term rule below, any two
 * configurations in use at once differ by one server, so their majorities overlap.
 */
import type { ConfState, NodeId } from "./types.ts";

/** One single-server change (Raft thesis §4.1), as an operator asks for it. */
export type ConfChange =
  | { type: "addLearner"; id: NodeId; addr: string }
  | { type: "addVoter"; id: NodeId; addr: string }
  | { type: "promote"; id: NodeId }
  | { type: "remove"; id: NodeId }
  /** The first leader records the bootstrap members' addresses and the new cluster's id. */
  | { type: "bootstrap"; clusterId: string; addrs: Record<string, string> };

/** A configuration entry as it sits in the log: the configuration it installs and why. */
export interface ConfEntry {
  conf: ConfState;
  change: ConfChange;
}

/**
 * First byte of every configuration entry's data. 0xc1 is the one byte the msgpack format never
 * uses, so no msgpack-encoded application command (the KV and MapReduce commands) can start with
 * it; Raft owns such entries and never hands them to the state machine as commands.
 */
export const CONF_ENTRY_MARK = 0xc1;
const CONF_ENTRY_VERSION = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether entry data is a configuration entry (owned by Raft, not by the application). */
export function isConfEntryData(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === CONF_ENTRY_MARK;
}

/** Encodes a configuration entry's data: the mark, a version byte, then JSON. */
export function encodeConfEntry(entry: ConfEntry): Uint8Array {
  const body = encoder.encode(
    JSON.stringify({ conf: normalize(entry.conf), change: entry.change }),
  );
  const out = new Uint8Array(body.length + 2);
  out[0] = CONF_ENTRY_MARK;
  out[1] = CONF_ENTRY_VERSION;
  out.set(body, 2);
  return out;
}

/** Decodes a configuration entry; throws TypeError when the data is not a valid one. */
export function decodeConfEntry(data: Uint8Array): ConfEntry {
  if (!isConfEntryData(data)) throw new TypeError("Invalid configuration entry: missing mark");
  if (data[1] !== CONF_ENTRY_VERSION) {
    throw new TypeError(`Invalid configuration entry: unsupported version ${data[1]}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data.subarray(2)));
  } catch (error) {
    throw new TypeError(`Invalid configuration entry: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null) {
    throw new TypeError("Invalid configuration entry: not an object");
  }
  const r = raw as Record<string, unknown>;
  return { conf: validateConfState(r.conf), change: validateChange(r.change) };
}

/** Encodes a configuration on its own (snapshot headers and snapshot messages). */
export function encodeConfState(conf: ConfState): Uint8Array {
  return encoder.encode(JSON.stringify(normalize(conf)));
}

/** Decodes encodeConfState's bytes; throws TypeError when they are not a valid configuration. */
export function decodeConfState(bytes: Uint8Array): ConfState {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new TypeError(`Invalid configuration: ${(error as Error).message}`);
  }
  return validateConfState(raw);
}

function ids(v: unknown, what: string): NodeId[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new TypeError(`Invalid configuration: ${what} is not an array`);
  for (const x of v) {
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x <= 0) {
      throw new TypeError(`Invalid configuration: ${what} holds a bad node id`);
    }
  }
  return v as NodeId[];
}

/** Checks untrusted data is a configuration and returns a clean, sorted copy. */
export function validateConfState(v: unknown): ConfState {
  if (typeof v !== "object" || v === null) {
    throw new TypeError("Invalid configuration: not an object");
  }
  const o = v as Record<string, unknown>;
  const conf: ConfState = { peers: ids(o.peers, "peers") };
  const learners = ids(o.learners, "learners");
  if (learners.length > 0) conf.learners = learners;
  const removed = ids(o.removed, "removed");
  if (removed.length > 0) conf.removed = removed;
  if (o.addrs !== undefined) {
    if (typeof o.addrs !== "object" || o.addrs === null || Array.isArray(o.addrs)) {
      throw new TypeError("Invalid configuration: addrs is not an object");
    }
    const addrs: Record<string, string> = {};
    for (const [k, a] of Object.entries(o.addrs)) {
      if (!/^[1-9]\d*$/.test(k) || typeof a !== "string") {
        throw new TypeError("Invalid configuration: addrs holds a bad entry");
      }
      addrs[k] = a;
    }
    conf.addrs = addrs;
  }
  if (o.clusterId !== undefined) {
    if (typeof o.clusterId !== "string" || o.clusterId.length === 0) {
      throw new TypeError("Invalid configuration: clusterId is not a string");
    }
    conf.clusterId = o.clusterId;
  }
  const all = [...conf.peers, ...(conf.learners ?? [])];
  if (new Set(all).size !== all.length) {
    throw new TypeError("Invalid configuration: a node is listed twice");
  }
  return normalize(conf);
}

function validateChange(v: unknown): ConfChange {
  if (typeof v !== "object" || v === null) {
    throw new TypeError("Invalid configuration entry: change is not an object");
  }
  const o = v as Record<string, unknown>;
  const id = o.id;
  const okId = typeof id === "number" && Number.isSafeInteger(id) && id > 0;
  switch (o.type) {
    case "addLearner":
    case "addVoter":
      if (okId && typeof o.addr === "string") return { type: o.type, id, addr: o.addr };
      break;
    case "promote":
    case "remove":
      if (okId) return { type: o.type, id };
      break;
    case "bootstrap":
      if (typeof o.clusterId === "string" && typeof o.addrs === "object" && o.addrs !== null) {
        return {
          type: "bootstrap",
          clusterId: o.clusterId,
          addrs: { ...(o.addrs as Record<string, string>) },
        };
      }
      break;
  }
  throw new TypeError("Invalid configuration entry: bad change");
}

function sorted(xs: NodeId[]): NodeId[] {
  return [...new Set(xs)].sort((a, b) => a - b);
}

/** A copy with sorted, duplicate-free id lists and no empty optional fields. */
export function normalize(conf: ConfState): ConfState {
  const out: ConfState = { peers: sorted(conf.peers) };
  if (conf.learners && conf.learners.length > 0) out.learners = sorted(conf.learners);
  if (conf.removed && conf.removed.length > 0) out.removed = sorted(conf.removed);
  if (conf.addrs && Object.keys(conf.addrs).length > 0) out.addrs = { ...conf.addrs };
  if (conf.clusterId) out.clusterId = conf.clusterId;
  return out;
}

/** The voters of a configuration. */
export function votersOf(conf: ConfState): NodeId[] {
  return conf.peers;
}

/** The learners of a configuration. */
export function learnersOf(conf: ConfState): NodeId[] {
  return conf.learners ?? [];
}

/** Whether `id` is a voter or a learner of `conf`. */
export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.peers.includes(id) || (conf.learners ?? []).includes(id);
}

/** Votes (or acknowledgements) needed among `voters` voters: a strict majority. */
export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The configuration after `change`; throws RangeError when the change does not apply (the
 * leader checks with refusal() first, so this only fires on a broken invariant or bad input).
 * Removed ids are remembered so they are never reused (etcd does the same for member ids).
 */
export function applyChange(conf: ConfState, change: ConfChange): ConfState {
  const voters = [...conf.peers];
  const learners = [...(conf.learners ?? [])];
  const removed = [...(conf.removed ?? [])];
  const addrs = { ...(conf.addrs ?? {}) };
  let clusterId = conf.clusterId;
  switch (change.type) {
    case "addLearner":
    case "addVoter":
      if (isMember(conf, change.id)) throw new RangeError(`Node ${change.id} is already a member`);
      (change.type === "addVoter" ? voters : learners).push(change.id);
      addrs[change.id] = change.addr;
      break;
    case "promote": {
      const i = learners.indexOf(change.id);
      if (i < 0) throw new RangeError(`Node ${change.id} is not a learner`);
      learners.splice(i, 1);
      voters.push(change.id);
      break;
    }
    case "remove": {
      const v = voters.indexOf(change.id);
      const l = learners.indexOf(change.id);
      if (v < 0 && l < 0) throw new RangeError(`Node ${change.id} is not a member`);
      if (v >= 0) voters.splice(v, 1);
      if (l >= 0) learners.splice(l, 1);
      delete addrs[change.id];
      removed.push(change.id);
      break;
    }
    case "bootstrap":
      clusterId = change.clusterId;
      for (const [k, a] of Object.entries(change.addrs)) {
        if (isMember(conf, Number(k))) addrs[k] = a;
      }
      break;
  }
  return normalize({ peers: voters, learners, removed, addrs, clusterId });
}

/** What the leader knows when it decides whether a change may be proposed now. */
export interface ChangeContext {
  /** The configuration in force (the last committed one). */
  conf: ConfState;
  /** This leader's id. */
  leader: NodeId;
  /** Whether a configuration entry is in the log but not yet committed. */
  pending: boolean;
  /** What that pending entry changes and where it is ("added node 4 (h:4) as a learner at index 12"). */
  pendingChange?: string;
  /** Whether an entry of the leader's current term has committed. */
  ownTermCommitted: boolean;
  /** Whether a leadership transfer is under way. */
  transferring: boolean;
  /** Members the leader heard from within the last election timeout (itself included). */
  active: ReadonlySet<NodeId>;
  /** Each member's match index as the leader tracks it. */
  match: ReadonlyMap<NodeId, number>;
  /** The leader's last log index. */
  lastIndex: number;
}

/**
 * A learner may be promoted once its log holds this share of the leader's (etcd's
 * isLearnerReady uses the same 90%): a voter far behind would make the new, larger quorum wait
 * for it to catch up, and could cost the cluster its availability meanwhile.
 */
export const PROMOTE_READY_FRACTION = 0.9;

/** How the refusal for a change already in progress starts (see isChangeInProgress). */
export const CHANGE_IN_PROGRESS = "A configuration change is already in progress";

/**
 * Whether a refusal is for a change already in progress: the caller answers it at once (409)
 * instead of waiting for that change, which may never commit (etcd and hashicorp/raft also
 * refuse a second change outright rather than queueing it).
 */
export function isChangeInProgress(reason: string): boolean {
  return reason.startsWith(CHANGE_IN_PROGRESS);
}

/**
 * Why the leader must refuse `change` now, or undefined when it may propose it. Every reason is
 * a sentence the operator can act on (answered as HTTP 409).
 */
export function refusal(ctx: ChangeContext, change: ConfChange): string | undefined {
  const { conf } = ctx;
  if (ctx.transferring) {
    return "A leadership transfer is in progress: retry once the new leader is in office";
  }
  if (ctx.pending) {
    // Thesis §4.1: one single-server change at a time, or two majorities could be disjoint.
    // Named, so the operator sees whose change blocks theirs (it may be stuck, not just slow).
    return `${CHANGE_IN_PROGRESS}: ${
      ctx.pendingChange ?? "an earlier change"
    } has not committed yet; ` +
      "retry once it has";
  }
  if (!ctx.ownTermCommitted) {
    // Ongaro, raft-dev, "bug in single-server membership changes" (July 2015): two changes
    // proposed by leaders of different terms can form majorities that do not overlap. The fix,
    // enforced here, is that a leader proposes a change only after an entry of its own term
    // has committed, which also settles any change a previous leader left in the log.
    return "The leader has not committed an entry of its term yet: retry in a moment";
  }
  const voters = conf.peers;
  const learners = conf.learners ?? [];
  switch (change.type) {
    case "bootstrap":
      return conf.clusterId ? "The cluster id is already set" : undefined;
    case "addLearner":
    case "addVoter": {
      if (!Number.isSafeInteger(change.id) || change.id <= 0) {
        return `Node id ${change.id} is invalid: ids are positive integers`;
      }
      if (voters.includes(change.id)) return `Node ${change.id} is already a voter`;
      if (learners.includes(change.id)) return `Node ${change.id} is already a learner`;
      if ((conf.removed ?? []).includes(change.id)) {
        return `Node id ${change.id} was removed from this cluster and is never reused: pick a new id`;
      }
      for (const [k, a] of Object.entries(conf.addrs ?? {})) {
        if (a === change.addr && isMember(conf, Number(k))) {
          return `Address ${change.addr} is already used by node ${k}`;
        }
      }
      if (change.type === "addVoter") {
        // A new voter starts with an empty log and counts toward the quorum at once.
        return strictCheck(ctx, [...voters, change.id], `adding node ${change.id} as a voter`);
      }
      return undefined;
    }
    case "promote": {
      if (voters.includes(change.id)) return `Node ${change.id} is already a voter`;
      if (!learners.includes(change.id)) return `Node ${change.id} is not a member`;
      const match = ctx.match.get(change.id) ?? 0;
      const need = Math.ceil(ctx.lastIndex * PROMOTE_READY_FRACTION);
      if (!ctx.active.has(change.id) || match < need) {
        return `Learner ${change.id} is not caught up: it holds the log up to ${match} of ${ctx.lastIndex}` +
          ` (needs ${need}, ${
            PROMOTE_READY_FRACTION * 100
          }%) and must have answered within an election timeout`;
      }
      return strictCheck(ctx, [...voters, change.id], `promoting node ${change.id}`);
    }
    case "remove": {
      if (!voters.includes(change.id) && !learners.includes(change.id)) {
        return `Node ${change.id} is not a member`;
      }
      if (learners.includes(change.id)) return undefined;
      if (voters.length === 1) {
        return `Cannot remove node ${change.id}: it is the last voter`;
      }
      return strictCheck(
        ctx,
        voters.filter((v) => v !== change.id),
        `removing node ${change.id}`,
      );
    }
  }
}

/**
 * etcd's strict reconfiguration check: refuse a change after which the voters the leader can
 * reach now would not form a quorum, since the cluster could then commit nothing (not even a
 * change back) until the unreachable ones return.
 */
function strictCheck(ctx: ChangeContext, newVoters: NodeId[], what: string): string | undefined {
  const reachable = newVoters.filter((v) => ctx.active.has(v));
  const need = quorumOf(newVoters.length);
  if (reachable.length >= need) return undefined;
  const down = newVoters.filter((v) => !ctx.active.has(v));
  return `Refused ${what}: only ${reachable.length} of the ${newVoters.length} voters it leaves are reachable ` +
    `(a quorum needs ${need}; unreachable: ${down.join(", ")})`;
}

/** One line describing a change, for logs and the status page. */
export function describeChange(change: ConfChange): string {
  switch (change.type) {
    case "addLearner":
      return `added node ${change.id} (${change.addr}) as a learner`;
    case "addVoter":
      return `added node ${change.id} (${change.addr}) as a voter`;
    case "promote":
      return `promoted node ${change.id} to voter`;
    case "remove":
      return `removed node ${change.id}`;
    case "bootstrap":
      return `formed cluster ${change.clusterId}`;
  }
}
