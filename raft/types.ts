/**
 * Shared Raft vocabulary: log entries, hard state, snapshots and the contracts between the
 * consensus core, its storage and the replicated state machine, plus the validator of messages
 * received from the network.
 */
import { messageOutOfBounds } from "./bounds.ts";
import { validateConfState } from "./membership.ts";

/** Peer identifier: a positive integer, unique within a cluster; 0 means "nobody". */
export type NodeId = number;

/** The "no node" value for votes and leader hints. */
export const NONE: NodeId = 0;

/**
 * One log entry. `data` is the application's opaque command; an empty `data` is the no-op a
 * leader appends at the start of its term (Raft §8), which state machines skip.
 */
export interface Entry {
  index: number;
  term: number;
  data: Uint8Array;
}

/** The state Raft must persist before answering any message (Raft Figure 2). */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/**
 * Cluster membership (raft/membership.ts says how it changes): recorded in configuration entries
 * and snapshot headers, so a restarted or restored node knows it without any flag.
 */
export interface ConfState {
  /** The voters. */
  peers: NodeId[];
  /** Members that receive the log but neither vote nor count toward any quorum. */
  learners?: NodeId[];
  /** Ids removed from the cluster; never reused. */
  removed?: NodeId[];
  /** Peer addresses ("host:port") by id, opaque to Raft; recorded so every node can dial. */
  addrs?: Record<string, string>;
  /** The cluster's id, drawn by its first leader. */
  clusterId?: string;
}

/** What a snapshot covers: every entry up to and including `index`, whose term is `term`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

/** A point-in-time image of the state machine plus the metadata that places it in the log. */
export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

/** The empty snapshot (index 0, term 0) a fresh node starts from. */
export function emptySnapshot(peers: NodeId[] = []): Snapshot {
  return { meta: { index: 0, term: 0, conf: { peers: [...peers] } }, data: new Uint8Array(0) };
}

/**
 * The replicated state machine a driver applies committed entries to. `apply` is called once per
 * committed entry in log order (no-ops included, so the machine can track the applied index);
 * its return value is handed back to whoever proposed that entry on this node.
 */
export interface StateMachine {
  apply(entry: Entry): unknown;
  /** Serialises the whole state as of the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's data. */
  restore(data: Uint8Array): void;
}

/** Fields every Raft message carries: sender, receiver and the sender's term. */
export interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

/** AppendEntries (Raft §5.3): entries following (index, logTerm), plus the leader's commit. */
export interface AppendMessage extends MessageBase {
  type: "app";
  /** Index of the entry immediately preceding `entries`. */
  index: number;
  /** Term of the entry at `index`. */
  logTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Reply to "app" (and the final acknowledgement of an installed snapshot). On success `index` is
 * the follower's last index matching the leader; on rejection `index` echoes the probed index and
 * (hintTerm, hintIndex) drive fast backup: the conflicting term and the first index of that term
 * in the follower's log, or hintTerm 0 and hintIndex = follower's last index + 1 if it is short.
 */
export interface AppendResponseMessage extends MessageBase {
  type: "appResp";
  index: number;
  reject: boolean;
  hintIndex: number;
  hintTerm: number;
  /** The sender's incarnation, as in HeartbeatResponseMessage; absent when it reports none. */
  inc?: number;
}

/** RequestVote or the PreVote probe (Raft §5.2, thesis §9.6), carrying the candidate's last log position. */
export interface VoteMessage extends MessageBase {
  type: "vote" | "preVote";
  index: number;
  logTerm: number;
  /**
   * Set by a candidate the leader told to campaign (leadership transfer): voters grant it even
   * while they hear from that leader (etcd's campaignTransfer context).
   */
  transfer?: boolean;
}

/** Leadership transfer: the leader tells an up-to-date voter to campaign now (etcd MsgTimeoutNow). */
export interface TimeoutNowMessage extends MessageBase {
  type: "timeoutNow";
}

/** Reply to "vote" / "preVote". */
export interface VoteResponseMessage extends MessageBase {
  type: "voteResp" | "preVoteResp";
  reject: boolean;
}

/** Leader heartbeat; `ctx` > 0 asks followers to confirm leadership for ReadIndex. */
export interface HeartbeatMessage extends MessageBase {
  type: "heartbeat";
  commit: number;
  ctx: number;
}

/**
 * Reply to "heartbeat", echoing its `ctx`. `reject` says the follower's log ends (at `index`,
 * its last index) before the commit the heartbeat carried, which the leader sends only up to
 * what the follower acknowledged: the follower lost entries it had made durable.
 */
export interface HeartbeatResponseMessage extends MessageBase {
  type: "heartbeatResp";
  ctx: number;
  reject: boolean;
  index: number;
  /**
   * The sender's incarnation: a number drawn anew each time its process starts. A leader that
   * found this follower's log went backwards (a wiped data directory) ignores replies from the
   * incarnations it had seen before: they speak of entries that are gone.
   */
  inc?: number;
}

/**
 * One chunk of InstallSnapshot (Raft §7): bytes [offset, offset + data.length) of the snapshot
 * data whose metadata is (index, logTerm, peers), total length `total` and CRC-32 `crc`.
 */
export interface SnapshotMessage extends MessageBase {
  type: "snap";
  index: number;
  logTerm: number;
  peers: NodeId[];
  /** The snapshot's whole configuration (learners, addresses, cluster id); `peers` are its voters. */
  conf?: ConfState;
  offset: number;
  total: number;
  crc: number;
  data: Uint8Array;
  done: boolean;
}

/** Reply to one "snap" chunk: `offset` is how many bytes the follower holds now (0 = restart). */
export interface SnapshotResponseMessage extends MessageBase {
  type: "snapResp";
  index: number;
  offset: number;
  reject: boolean;
}

/** Every message peers exchange: plain objects of numbers, strings, booleans, arrays and bytes. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage;

/** The message type names, for transports and metrics. */
export const MESSAGE_TYPES: readonly Message["type"][] = [
  "app",
  "appResp",
  "vote",
  "preVote",
  "voteResp",
  "preVoteResp",
  "heartbeat",
  "heartbeatResp",
  "snap",
  "snapResp",
  "timeoutNow",
];

/** A confirmed linearizable read point: once applied >= index, read request `ctx` may be served. */
export interface ReadState {
  ctx: number;
  index: number;
}

/**
 * What the core hands its driver each turn. The driver may send `messages` at once (a leader's
 * appends and heartbeats: they promise nothing about this node's own write), persists
 * `snapshot`, `entries` and `hardState` (one sync), then sends `messagesAfterSave` (votes and
 * acknowledgements, which promise what the write makes durable), installs the snapshot, applies
 * `committedEntries` in order, and calls advance(). etcd names the second list msgsAfterAppend.
 */
export interface Ready {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  /** Messages that do not depend on this Ready's write: they may go out before it. */
  messages: Message[];
  /** Messages that must wait until this Ready's write is durable. */
  messagesAfterSave: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

function fail(what: string): never {
  throw new TypeError(`Invalid Raft message: ${what}`);
}

function uint(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    fail(`field ${key} is not a non-negative integer`);
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (typeof v !== "boolean") fail(`field ${key} is not a boolean`);
  return v;
}

function bytes(o: Record<string, unknown>, key: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) fail(`field ${key} is not a byte array`);
  return v;
}

function validateEntries(v: unknown): Entry[] {
  if (!Array.isArray(v)) fail("field entries is not an array");
  const out: Entry[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const e = v[i];
    if (typeof e !== "object" || e === null) fail(`entry ${i} is not an object`);
    const r = e as Record<string, unknown>;
    out[i] = { index: uint(r, "index"), term: uint(r, "term"), data: bytes(r, "data") };
    if (i > 0 && out[i].index !== out[i - 1].index + 1) fail(`entry ${i} index is not contiguous`);
  }
  return out;
}

/**
 * Checks that untrusted decoded data is a well-formed Message whose terms and indexes are within
 * the bound of bounds.ts, and returns a clean copy holding only the known fields; throws
 * TypeError naming the first problem. Transports call this on every received message before
 * handing it to the node.
 */
export function validateMessage(x: unknown): Message {
  const m = validateShape(x);
  const bad = messageOutOfBounds(m);
  if (bad) fail(bad);
  return m;
}

function validateShape(x: unknown): Message {
  if (typeof x !== "object" || x === null || Array.isArray(x)) fail("not an object");
  const o = x as Record<string, unknown>;
  const type = o.type;
  if (typeof type !== "string") fail("field type is not a string");
  const from = uint(o, "from");
  const to = uint(o, "to");
  const term = uint(o, "term");
  if (from === NONE || to === NONE) fail("node ids must be positive");
  switch (type) {
    case "app": {
      const entries = validateEntries(o.entries);
      const index = uint(o, "index");
      if (entries.length > 0 && entries[0].index !== index + 1) fail("entries do not follow index");
      return {
        type,
        from,
        to,
        term,
        index,
        logTerm: uint(o, "logTerm"),
        entries,
        commit: uint(o, "commit"),
      };
    }
    case "appResp": {
      const m: AppendResponseMessage = {
        type,
        from,
        to,
        term,
        index: uint(o, "index"),
        reject: bool(o, "reject"),
        hintIndex: uint(o, "hintIndex"),
        hintTerm: uint(o, "hintTerm"),
      };
      if (o.inc !== undefined) m.inc = uint(o, "inc");
      return m;
    }
    case "vote":
    case "preVote": {
      const m: VoteMessage = {
        type,
        from,
        to,
        term,
        index: uint(o, "index"),
        logTerm: uint(o, "logTerm"),
      };
      if (o.transfer !== undefined && bool(o, "transfer")) m.transfer = true;
      return m;
    }
    case "timeoutNow":
      return { type, from, to, term };
    case "voteResp":
    case "preVoteResp":
      return { type, from, to, term, reject: bool(o, "reject") };
    case "heartbeat":
      return { type, from, to, term, commit: uint(o, "commit"), ctx: uint(o, "ctx") };
    case "heartbeatResp": {
      const m: HeartbeatResponseMessage = {
        type,
        from,
        to,
        term,
        ctx: uint(o, "ctx"),
        reject: bool(o, "reject"),
        index: uint(o, "index"),
      };
      if (o.inc !== undefined) m.inc = uint(o, "inc");
      return m;
    }
    case "snap": {
      const peers = o.peers;
      if (!Array.isArray(peers)) fail("field peers is not an array");
      const ids = peers.map((p, i) => {
        if (typeof p !== "number" || !Number.isSafeInteger(p) || p <= 0) {
          fail(`peer ${i} is not a positive integer`);
        }
        return p;
      });
      const data = bytes(o, "data");
      const offset = uint(o, "offset");
      const total = uint(o, "total");
      if (offset + data.length > total) fail("chunk extends past the snapshot's total length");
      const crc = uint(o, "crc");
      if (crc > 0xffffffff) fail("field crc is not a 32-bit value");
      let conf: ConfState | undefined;
      if (o.conf !== undefined) {
        try {
          conf = validateConfState(o.conf);
        } catch (error) {
          fail((error as Error).message);
        }
      }
      const snap: SnapshotMessage = {
        type,
        from,
        to,
        term,
        index: uint(o, "index"),
        logTerm: uint(o, "logTerm"),
        peers: ids,
        offset,
        total,
        crc,
        data,
        done: bool(o, "done"),
      };
      if (conf) snap.conf = conf;
      return snap;
    }
    case "snapResp":
      return {
        type,
        from,
        to,
        term,
        index: uint(o, "index"),
        offset: uint(o, "offset"),
        reject: bool(o, "reject"),
      };
    default:
      fail(`unknown type ${JSON.stringify(type).slice(0, 40)}`);
  }
}
