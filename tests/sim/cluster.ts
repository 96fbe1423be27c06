/**
 * Deterministic cluster simulator: N real RaftNodes (manual ticks) over a simulated network on
 * virtual time, driven by a seeded PRNG. Links are per direction and can be cut; messages can be
 * dropped, delayed, duplicated and held back for long reordering; nodes crash (volatile state
 * lost, storage kept) and restart. Every event is processed to quiescence before the next, so a
 * run is a pure function of its seed, and invariants are checked after every step. The last few
 * hundred events are kept (events.ts) and printed with the seed when a run fails.
 */
import { RaftNode, type RaftNodeConfig } from "../../raft/node.ts";
import { EventRing } from "./events.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { DurableStorage } from "../../raft/storage.ts";
import type {
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  Snapshot,
  StateMachine,
} from "../../raft/types.ts";

/** Seeded PRNG (mulberry32): uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A shuffled copy of `xs` (Fisher-Yates, drawing from `rand`). Not sort() with a random
 * comparator: V8 does not promise one order for an inconsistent comparator, and that made a
 * sweep seed take another course when other seeds had run before it in the same process.
 */
export function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Where the simulator gets each node's durable storage; lets DiskStorage run the same scenarios. */
export interface SimStorageFactory {
  /** Opens node `id`'s persisted state (empty the first time). Called at start and restart. */
  open(id: NodeId, peers: NodeId[]): Promise<DurableStorage>;
  /** Node `id` crashed: release `storage` without further writes (its data must survive). */
  crash(id: NodeId, storage: DurableStorage): Promise<void>;
  /** Removes everything at the end of a run. */
  cleanup(): Promise<void>;
  /** Deletes node `id`'s persisted state (a wiped data directory); the node is down. */
  wipe?(id: NodeId): Promise<void>;
}

/** Storage factory keeping one MemoryStorage per node across crashes. */
export function memoryStorageFactory(): SimStorageFactory {
  const stores = new Map<NodeId, MemoryStorage>();
  return {
    open(id, peers) {
      let s = stores.get(id);
      if (!s) stores.set(id, s = new MemoryStorage(peers));
      return Promise.resolve(s);
    },
    crash() {
      return Promise.resolve();
    },
    cleanup() {
      return Promise.resolve();
    },
    wipe(id) {
      stores.delete(id);
      return Promise.resolve();
    },
  };
}

/** Thrown when a safety invariant breaks; the test harness prints the seed. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes a test command (any string or number) as the opaque bytes Raft carries. */
export function cmd(v: string | number): Uint8Array {
  return enc.encode(String(v));
}

/** Decodes a test command. */
export function uncmd(b: Uint8Array): string {
  return dec.decode(b);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fnv(h: number, data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 16777619) >>> 0;
  return Math.imul(h ^ data.length, 16777619) >>> 0;
}

interface LogRecord {
  data: Uint8Array;
  prevTerm: number;
}

interface AppliedRecord {
  term: number;
  data: Uint8Array;
  /** Hash of every command applied up to and including this index. */
  cum: number;
}

/** Cluster-wide facts the invariant checks compare every node against. */
class Oracle {
  /** index -> term -> what the first node to log (index, term) stored. */
  logs = new Map<number, Map<number, LogRecord>>();
  applied = new Map<number, AppliedRecord>();
  leaders = new Map<number, NodeId>();
  /** Voters ("1,2,3") of the configuration in force at each configuration index seen. */
  configs = new Map<number, string>();
  maxApplied = 0;

  fail(msg: string): never {
    throw new InvariantError(msg);
  }

  /** Log matching: same (index, term) means same command and same preceding term. */
  logged(id: NodeId, e: Entry, prevTerm: number): void {
    let byTerm = this.logs.get(e.index);
    if (!byTerm) this.logs.set(e.index, byTerm = new Map());
    const r = byTerm.get(e.term);
    if (!r) {
      byTerm.set(e.term, { data: e.data, prevTerm });
      return;
    }
    if (!sameBytes(r.data, e.data)) {
      this.fail(
        `Log matching broken: node ${id} logged a different command at ${e.index}/${e.term}`,
      );
    }
    if (prevTerm >= 0 && r.prevTerm >= 0 && r.prevTerm !== prevTerm) {
      this.fail(
        `Log matching broken: node ${id} has term ${prevTerm} before ${e.index}/${e.term}, another node ${r.prevTerm}`,
      );
    }
  }

  /** State machine safety: one command per index, applied in order. */
  didApply(id: NodeId, e: Entry, cum: number): void {
    const r = this.applied.get(e.index);
    if (!r) {
      this.applied.set(e.index, { term: e.term, data: e.data, cum });
      if (e.index > this.maxApplied) this.maxApplied = e.index;
      return;
    }
    if (r.term !== e.term || !sameBytes(r.data, e.data)) {
      this.fail(
        `Apply safety broken: node ${id} applied ${e.index}/${e.term} "${
          uncmd(e.data).slice(0, 20)
        }", another node ${e.index}/${r.term} "${uncmd(r.data).slice(0, 20)}"`,
      );
    }
    if (r.cum !== cum) this.fail(`Apply history differs on node ${id} at index ${e.index}`);
  }

  leader(id: NodeId, term: number): boolean {
    const l = this.leaders.get(term);
    if (l === undefined) {
      this.leaders.set(term, id);
      return true;
    }
    if (l !== id) this.fail(`Election safety broken: nodes ${l} and ${id} both lead term ${term}`);
    return false;
  }
}

/** The state machine every simulated node runs: tracks the applied index and history hash. */
export class SimStateMachine implements StateMachine {
  lastApplied = 0;
  cum = 0x811c9dc5;
  /** Extra bytes in every snapshot, to exercise chunked InstallSnapshot. */
  readonly padding: number;
  readonly #id: NodeId;
  readonly #oracle: Oracle;

  constructor(id: NodeId, oracle: Oracle, padding: number) {
    this.#id = id;
    this.#oracle = oracle;
    this.padding = padding;
  }

  apply(e: Entry): unknown {
    if (e.index !== this.lastApplied + 1) {
      this.#oracle.fail(
        `Node ${this.#id} applied ${e.index} after ${this.lastApplied}: out of order or gap`,
      );
    }
    this.cum = fnv(this.cum, e.data);
    this.lastApplied = e.index;
    this.#oracle.didApply(this.#id, e, this.cum);
    return e.index;
  }

  snapshot(): Uint8Array {
    const out = new Uint8Array(12 + this.padding);
    const dv = new DataView(out.buffer);
    dv.setFloat64(0, this.lastApplied);
    dv.setUint32(8, this.cum);
    for (let i = 12; i < out.length; i++) out[i] = (i * 31 + this.lastApplied) & 0xff;
    return out;
  }

  restore(data: Uint8Array): void {
    if (data.length < 12) {
      this.#oracle.fail(`Node ${this.#id} restored a ${data.length}-byte snapshot`);
    }
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const index = dv.getFloat64(0);
    const cum = dv.getUint32(8);
    for (let i = 12; i < data.length; i++) {
      if (data[i] !== ((i * 31 + index) & 0xff)) {
        this.#oracle.fail(`Node ${this.#id} restored a corrupted snapshot at byte ${i}`);
      }
    }
    const r = this.#oracle.applied.get(index);
    if (r && r.cum !== cum) {
      this.#oracle.fail(
        `Node ${this.#id} restored a snapshot at ${index} with a different history`,
      );
    }
    this.lastApplied = index;
    this.cum = cum;
  }
}

/** Wraps a node's storage to check every write against the oracle and measure the log. */
class CheckedStorage implements DurableStorage {
  readonly inner: DurableStorage;
  readonly #id: NodeId;
  readonly #oracle: Oracle;
  #lastTerm = 0;

  constructor(id: NodeId, inner: DurableStorage, oracle: Oracle) {
    this.#id = id;
    this.inner = inner;
    this.#oracle = oracle;
    this.#lastTerm = inner.initialState().hardState.term;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return this.inner.initialState();
  }
  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    return this.inner.entries(lo, hi, maxBytes);
  }
  term(index: number): number {
    return this.inner.term(index);
  }
  firstIndex(): number {
    return this.inner.firstIndex();
  }
  lastIndex(): number {
    return this.inner.lastIndex();
  }
  snapshot(): Snapshot {
    return this.inner.snapshot();
  }

  save(hardState: HardState | undefined, entries: Entry[], snapshot?: Snapshot): Promise<void> {
    if (hardState) {
      if (hardState.term < this.#lastTerm) {
        this.#oracle.fail(`Node ${this.#id} persisted term ${hardState.term} < ${this.#lastTerm}`);
      }
      this.#lastTerm = hardState.term;
    }
    if (entries.length > 0) {
      const first = entries[0].index;
      let prevTerm = -1;
      if (snapshot && snapshot.meta.index === first - 1) prevTerm = snapshot.meta.term;
      else if (
        !snapshot && first - 1 >= this.inner.firstIndex() - 1 && first - 1 <= this.inner.lastIndex()
      ) {
        prevTerm = this.inner.term(first - 1);
      }
      for (const e of entries) {
        this.#oracle.logged(this.#id, e, prevTerm);
        prevTerm = e.term;
      }
    }
    return this.inner.save(hardState, entries, snapshot);
  }

  compact(snapshot: Snapshot): Promise<void> {
    return this.inner.compact(snapshot);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Bytes of the persisted log: entry data plus 24 bytes of framing per entry. */
  logBytes(): number {
    const lo = this.inner.firstIndex();
    const hi = this.inner.lastIndex();
    if (hi < lo) return 0;
    let size = 0;
    for (const e of this.inner.entries(lo, hi + 1)) size += e.data.length + 24;
    return size;
  }
}

interface SimNodeState {
  id: NodeId;
  node: RaftNode | undefined;
  storage: CheckedStorage | undefined;
  sm: SimStateMachine | undefined;
  /** Bumped on every crash; deliveries addressed to an older incarnation are dropped. */
  incarnation: number;
  /** Applied index of the last incarnation, remembered across crashes for nCommitted. */
  applied: number;
  /** Role, term and commit last seen, to record their changes. */
  seen: string;
  seenCommit: number;
  /** Voters it bootstraps with on a fresh storage: the initial ids, or none for a joined node. */
  bootstrap: NodeId[];
}

interface Delivery {
  at: number;
  seq: number;
  msg: Message;
  fromInc: number;
  toInc: number;
}

/** Metrics summed over a run: see Cluster.totals(). */
export interface SimTotals {
  snapshotsSent: number;
  snapshotsInstalled: number;
  snapshotsTaken: number;
  crashes: number;
  leaders: number;
}

/** Options for a simulated cluster. */
export interface ClusterOptions {
  n: number;
  seed: number;
  storage?: SimStorageFactory;
  config?: Partial<RaftNodeConfig>;
  /** Bytes of padding in state machine snapshots (default 0). */
  snapshotPadding?: number;
  /**
   * Drop messages sent by or addressed to a crashed incarnation, as labrpc does (default true).
   * With false, messages from before a crash may still arrive: a harsher network.
   */
  dropStale?: boolean;
  /** How many recent events to keep for a failure report (default 300). */
  traceEvents?: number;
}

/** A simulated cluster with the test helpers of the classic lab harness, on virtual time. */
export class Cluster {
  readonly seed: number;
  /** Every node: the initial ones, then those added with addNode(). */
  readonly ids: NodeId[];
  readonly oracle = new Oracle();
  readonly rand: () => number;
  /** Virtual milliseconds since the start. */
  now = 0;
  reliable = true;
  longReordering = false;
  /** Probability of duplicating a message on an unreliable network. */
  dupRate = 0.05;
  /** Messages delivered to a node (all types), and their approximate encoded bytes. */
  delivered = 0;
  bytes = 0;
  /** Deliveries per message type. */
  readonly byType = new Map<string, number>();
  /** The last events of the run (sends, drops, crashes, links, roles, commits). */
  readonly events: EventRing;
  readonly #nodes = new Map<NodeId, SimNodeState>();
  readonly #connected = new Map<NodeId, boolean>();
  readonly #cut = new Set<string>();
  readonly #factory: SimStorageFactory;
  readonly #config: Partial<RaftNodeConfig>;
  readonly #padding: number;
  readonly #dropStale: boolean;
  #queue: Delivery[] = [];
  #seq = 0;
  #nextTick = 0;
  #running = false;
  readonly tickMs: number;

  constructor(opts: ClusterOptions) {
    this.seed = opts.seed;
    this.rand = prng(opts.seed);
    this.ids = Array.from({ length: opts.n }, (_, i) => i + 1);
    this.#factory = opts.storage ?? memoryStorageFactory();
    this.#config = { manualTicks: true, snapshotEntries: 1e12, ...opts.config };
    this.tickMs = this.#config.tickMs ?? 10;
    this.#padding = opts.snapshotPadding ?? 0;
    this.#dropStale = opts.dropStale ?? true;
    this.events = new EventRing(opts.traceEvents ?? 300);
    for (const id of this.ids) this.#addState(id, this.ids.slice());
  }

  /** Registers node `id` (not started), connected, bootstrapping with `bootstrap` as voters. */
  #addState(id: NodeId, bootstrap: NodeId[]): void {
    this.#nodes.set(id, {
      id,
      node: undefined,
      storage: undefined,
      sm: undefined,
      incarnation: 0,
      applied: 0,
      seen: "down",
      seenCommit: 0,
      bootstrap,
    });
    this.#connected.set(id, true);
  }

  /** How many nodes exist (initial plus added). */
  get n(): number {
    return this.ids.length;
  }

  /**
   * Starts a new node `id` with an empty log and no configuration (`serve --join`): it waits
   * for a leader that added it to reach it.
   */
  async addNode(id: NodeId): Promise<void> {
    if (this.#nodes.has(id)) throw new RangeError(`Node ${id} already exists`);
    this.ids.push(id);
    this.#addState(id, []);
    await this.restart(id);
  }

  /** Starts every node. */
  async start(): Promise<void> {
    for (const id of this.ids) await this.restart(id);
  }

  /** Stops every node and removes storage. */
  async shutdown(): Promise<void> {
    for (const id of this.ids) {
      const s = this.#nodes.get(id)!;
      if (s.node) await this.crash(id);
    }
    await this.#factory.cleanup();
  }

  #state(id: NodeId): SimNodeState {
    const s = this.#nodes.get(id);
    if (!s) throw new RangeError(`No such node: ${id}`);
    return s;
  }

  /** The running RaftNode with this id, or undefined when crashed. */
  node(id: NodeId): RaftNode | undefined {
    return this.#state(id).node;
  }

  isAlive(id: NodeId): boolean {
    return this.#state(id).node !== undefined;
  }

  isConnected(id: NodeId): boolean {
    return this.#connected.get(id) === true;
  }

  /** Highest index node `id` applied (remembered across crashes). */
  applied(id: NodeId): number {
    const s = this.#state(id);
    return s.sm ? s.sm.lastApplied : s.applied;
  }

  /** The hard state node `id`'s storage holds now (undefined while it is down). */
  persistedHardState(id: NodeId): HardState | undefined {
    return this.#state(id).storage?.initialState().hardState;
  }

  /** Persisted log size of node `id` (entry data + 24 bytes per entry). */
  logBytes(id: NodeId): number {
    const s = this.#state(id);
    return s.storage ? s.storage.logBytes() : 0;
  }

  /** Crash: volatile state is gone; what the storage persisted survives. */
  async crash(id: NodeId): Promise<void> {
    const s = this.#state(id);
    if (!s.node) return;
    this.events.note(this.now, "crash", id);
    s.seen = "down";
    this.#addMetrics(this.#dead, s.node);
    await s.node.stop();
    s.applied = s.sm!.lastApplied;
    s.node = undefined;
    s.sm = undefined;
    s.incarnation++;
    const storage = s.storage!;
    s.storage = undefined;
    await this.#factory.crash(id, storage.inner);
  }

  /** Crashes node `id` and deletes its storage, as if its data directory were wiped. */
  async wipe(id: NodeId): Promise<void> {
    const wipe = this.#factory.wipe;
    if (!wipe) throw new Error("This storage factory cannot wipe a node");
    await this.crash(id);
    this.events.note(this.now, "data wiped", id);
    await wipe.call(this.#factory, id);
  }

  /** Restarts node `id` (crashing it first if it runs) from its persisted state. */
  async restart(id: NodeId): Promise<void> {
    const s = this.#state(id);
    if (s.node) await this.crash(id);
    this.events.note(this.now, "restart", id);
    const inner = await this.#factory.open(id, s.bootstrap);
    s.storage = new CheckedStorage(id, inner, this.oracle);
    s.sm = new SimStateMachine(id, this.oracle, this.#padding);
    s.incarnation++;
    const inc = s.incarnation;
    const node = new RaftNode({
      id,
      peers: s.bootstrap,
      storage: s.storage,
      stateMachine: s.sm,
      send: (msgs) => this.#send(inc, msgs),
      config: this.#config,
      rand: prng(Math.floor(this.rand() * 2 ** 32)),
      // Grows at every start, like the wall clock a real node uses; deterministic here.
      incarnation: inc,
      onFatal: (err) => {
        throw err;
      },
    });
    s.node = node;
    node.start();
    await this.#settle(s);
  }

  #dead = { snapshotsSent: 0, snapshotsInstalled: 0, snapshotsTaken: 0, crashes: 0 };

  #addMetrics(into: Omit<SimTotals, "leaders">, node: RaftNode): void {
    const m = node.metrics;
    into.snapshotsSent += m.snapshotsSent;
    into.snapshotsInstalled += m.snapshotsInstalled;
    into.snapshotsTaken += m.snapshotsTaken;
    into.crashes += into === this.#dead ? 1 : 0;
  }

  /** Metrics summed over every node incarnation so far, plus crash and leader counts. */
  totals(): SimTotals {
    const t = { ...this.#dead, leaders: this.oracle.leaders.size };
    for (const id of this.ids) {
      const n = this.node(id);
      if (n) this.#addMetrics(t, n);
    }
    return t;
  }

  /** Cuts every link to and from node `id`. */
  disconnect(id: NodeId): void {
    this.events.note(this.now, "disconnect", id);
    this.#connected.set(id, false);
  }

  /** Restores node `id`'s links to every other connected node. */
  connect(id: NodeId): void {
    this.events.note(this.now, "connect", id);
    this.#connected.set(id, true);
  }

  /** Cuts (or restores) the one-way link from `from` to `to`. */
  setLink(from: NodeId, to: NodeId, up: boolean): void {
    this.events.note(this.now, `link ${from}>${to} ${up ? "up" : "cut"}`);
    if (up) this.#cut.delete(`${from}>${to}`);
    else this.#cut.add(`${from}>${to}`);
  }

  /** Full connectivity inside each group, none between groups. */
  partition(...groups: NodeId[][]): void {
    this.events.note(this.now, `partition ${groups.map((g) => g.join(",")).join(" | ")}`);
    this.#cut.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.ids) {
      for (const b of this.ids) {
        if (a !== b && groupOf.get(a) !== groupOf.get(b)) this.#cut.add(`${a}>${b}`);
      }
    }
  }

  /** Removes all one-way cuts (disconnect() flags stay). */
  heal(): void {
    this.events.note(this.now, "heal");
    this.#cut.clear();
  }

  #linkUp(from: NodeId, to: NodeId): boolean {
    return this.isConnected(from) && this.isConnected(to) && !this.#cut.has(`${from}>${to}`);
  }

  #send(fromInc: number, msgs: Message[]): void {
    const ev = this.events;
    for (const m of msgs) {
      if (!this.#linkUp(m.from, m.to)) {
        ev.add({ at: this.now, kind: "drop", msg: m, why: "link down" });
        continue;
      }
      const toInc = this.#state(m.to).incarnation;
      let delay = 0.1 + this.rand() * 0.9;
      if (!this.reliable) {
        if (this.rand() < 0.1) {
          ev.add({ at: this.now, kind: "drop", msg: m, why: "lost" });
          continue;
        }
        delay = this.rand() * 27;
      }
      ev.add({ at: this.now, kind: "send", msg: m });
      if (this.longReordering && this.rand() < 2 / 3) {
        delay += 200 + this.rand() * (this.rand() * 2000);
      }
      this.#push({ at: this.now + delay, seq: this.#seq++, msg: m, fromInc, toInc });
      if (!this.reliable && this.rand() < this.dupRate) {
        ev.add({ at: this.now, kind: "dup", msg: m });
        this.#push({
          at: this.now + this.rand() * 27,
          seq: this.#seq++,
          msg: m,
          fromInc,
          toInc,
        });
      }
    }
  }

  #push(d: Delivery): void {
    // Binary heap keyed by (at, seq).
    const q = this.#queue;
    q.push(d);
    let i = q.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(q[i], q[p])) break;
      [q[i], q[p]] = [q[p], q[i]];
      i = p;
    }
  }

  #pop(): Delivery | undefined {
    const q = this.#queue;
    if (q.length === 0) return undefined;
    const top = q[0];
    const last = q.pop()!;
    if (q.length > 0) {
      q[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < q.length && before(q[l], q[m])) m = l;
        if (r < q.length && before(q[r], q[m])) m = r;
        if (m === i) break;
        [q[i], q[m]] = [q[m], q[i]];
        i = m;
      }
    }
    return top;
  }

  async #settle(s: SimNodeState): Promise<void> {
    if (!s.node) return;
    await s.node.settle();
    this.#checkLeaders();
  }

  #checkLeaders(): void {
    for (const s of this.#nodes.values()) {
      if (!s.node) continue;
      const st = s.node.status();
      const seen = `${st.role} t${st.term}`;
      if (seen !== s.seen) {
        this.events.note(this.now, `${seen}${st.leader ? ` lead=${st.leader}` : ""}`, s.id);
        s.seen = seen;
      }
      if (st.commit !== s.seenCommit) {
        this.events.note(this.now, `commit ${st.commit}`, s.id);
        s.seenCommit = st.commit;
      }
      if (st.role !== "leader") continue;
      if (this.oracle.leader(s.id, st.term)) this.#checkCompleteness(s, st.snapshotIndex);
    }
    this.#checkConfigs();
  }

  /**
   * Membership safety: configurations commit in log order, each one single-server change away
   * from the one before (so consecutive majorities overlap), and every node whose configuration
   * in force is a committed one agrees with the others on the one at that index.
   */
  #checkConfigs(): void {
    for (const s of this.#nodes.values()) {
      const ms = s.node?.membership();
      // An uncommitted configuration entry may still be overwritten: compare committed ones.
      if (!ms || ms.confIndex === 0 || ms.confIndex > s.node!.status().commit) continue;
      const key = ms.confIndex;
      const seen = this.oracle.configs.get(key);
      const voters = ms.conf.peers.join(",");
      if (seen === undefined) this.oracle.configs.set(key, voters);
      else if (seen !== voters) {
        this.oracle.fail(
          `Configuration safety broken: node ${s.id} has voters [${voters}] at index ${key}, another node [${seen}]`,
        );
      }
    }
    let prev: string | undefined;
    for (const key of [...this.oracle.configs.keys()].sort((a, b) => a - b)) {
      const cur = this.oracle.configs.get(key)!;
      if (prev !== undefined) {
        const a = new Set(prev.split(",").filter(Boolean));
        const b = new Set(cur.split(",").filter(Boolean));
        let diff = 0;
        for (const x of a) if (!b.has(x)) diff++;
        for (const x of b) if (!a.has(x)) diff++;
        if (diff > 1) {
          this.oracle.fail(
            `Membership safety broken: voters went from [${prev}] to [${cur}] at index ${key} in one step`,
          );
        }
      }
      prev = cur;
    }
  }

  /** Leader completeness (Raft §5.4): a new leader holds every entry anyone applied. */
  #checkCompleteness(s: SimNodeState, snapshotIndex: number): void {
    for (let i = snapshotIndex + 1; i <= this.oracle.maxApplied; i++) {
      const r = this.oracle.applied.get(i);
      if (!r) continue;
      const t = s.node!.termAt(i);
      if (t !== r.term) {
        this.oracle.fail(
          `Leader completeness broken: node ${s.id} leads without applied entry ${i}/${r.term} (has term ${t})`,
        );
      }
    }
  }

  /** Runs the network and clocks for `ms` virtual milliseconds. */
  async run(ms: number): Promise<void> {
    if (this.#running) {
      throw new Error("Cluster.run() is not reentrant: drive concurrent clients from one loop");
    }
    this.#running = true;
    try {
      await this.#runUntil(this.now + ms);
    } finally {
      this.#running = false;
    }
  }

  async #runUntil(end: number): Promise<void> {
    for (;;) {
      const q = this.#queue;
      const nextMsg = q.length > 0 ? q[0].at : Infinity;
      if (Math.min(nextMsg, this.#nextTick) > end) break;
      if (nextMsg < this.#nextTick) {
        const d = this.#pop()!;
        this.now = d.at;
        const to = this.#state(d.msg.to);
        const from = this.#state(d.msg.from);
        if (!to.node || !this.#linkUp(d.msg.from, d.msg.to)) {
          const why = to.node ? "link down on arrival" : "receiver down";
          this.events.add({ at: this.now, kind: "drop", msg: d.msg, why });
          continue;
        }
        if (this.#dropStale && (to.incarnation !== d.toInc || from.incarnation !== d.fromInc)) {
          this.events.add({ at: this.now, kind: "drop", msg: d.msg, why: "stale incarnation" });
          continue;
        }
        this.delivered++;
        this.bytes += approxBytes(d.msg);
        this.byType.set(d.msg.type, (this.byType.get(d.msg.type) ?? 0) + 1);
        to.node.step(d.msg);
        await this.#settle(to);
      } else {
        this.now = this.#nextTick;
        this.#nextTick += this.tickMs;
        for (const s of this.#nodes.values()) {
          if (!s.node) continue;
          s.node.tick();
          await this.#settle(s);
        }
      }
    }
    this.now = end;
  }

  /** Proposes on node `id` like the lab's Start(): index, term and whether it was leader. */
  async start1(
    id: NodeId,
    data: Uint8Array,
  ): Promise<{ index: number; term: number; isLeader: boolean }> {
    const s = this.#state(id);
    if (!s.node) return { index: -1, term: -1, isLeader: false };
    try {
      const sub = s.node.submit(data);
      sub.done.catch(() => {});
      await this.#settle(s);
      return { index: sub.index, term: sub.term, isLeader: true };
    } catch {
      return { index: -1, term: s.node.status().term, isLeader: false };
    }
  }

  /** The seed, the recent events and the nodes' state: what a failure report prints. */
  report(): string {
    const lines = this.events.lines();
    const skipped = this.events.total - lines.length;
    return `SEED=${this.seed}, virtual t=${Math.round(this.now)} ms; last ${lines.length} events` +
      `${skipped > 0 ? ` (${skipped} earlier ones not kept)` : ""}:\n${lines.join("\n")}` +
      `\nnodes:${this.describe()}`;
  }

  /** One line per node: role, term, indexes, connectivity; for failure messages. */
  describe(): string {
    return this.ids.map((id) => {
      const n = this.node(id);
      if (!n) return `\n  ${id}: down`;
      const s = n.status();
      const pr = s.progress ? " " + JSON.stringify(s.progress) : "";
      const conf = `voters=${s.voters.join(",")}${
        s.learners.length > 0 ? ` learners=${s.learners.join(",")}` : ""
      }@${s.configIndex}`;
      return `\n  ${id}: ${s.role} t${s.term} lead=${s.leader} commit=${s.commit} applied=${s.applied} last=${s.lastIndex} snap=${s.snapshotIndex} ${conf}${
        this.isConnected(id) ? "" : " DISCONNECTED"
      }${pr}`;
    }).join("");
  }

  /** (term, isLeader) of a running node. */
  getState(id: NodeId): { term: number; isLeader: boolean } {
    const n = this.node(id);
    if (!n) return { term: -1, isLeader: false };
    const st = n.status();
    return { term: st.term, isLeader: st.role === "leader" };
  }

  /** Waits up to ~5 virtual s for exactly one leader among connected nodes; returns it. */
  async checkOneLeader(): Promise<NodeId> {
    for (let iter = 0; iter < 10; iter++) {
      await this.run(450 + this.rand() * 100);
      const byTerm = new Map<number, NodeId[]>();
      for (const id of this.ids) {
        if (!this.isConnected(id) || !this.isAlive(id)) continue;
        const { term, isLeader } = this.getState(id);
        if (isLeader) byTerm.set(term, [...(byTerm.get(term) ?? []), id]);
      }
      let last = -1;
      for (const [term, leaders] of byTerm) {
        if (leaders.length > 1) this.oracle.fail(`Term ${term} has leaders ${leaders.join(", ")}`);
        if (term > last) last = term;
      }
      if (byTerm.size > 0) return byTerm.get(last)![0];
    }
    throw new Error(
      `Expected one leader, got none (seed ${this.seed}, t=${this.now} ms): ${this.describe()}`,
    );
  }

  /** The term all connected nodes agree on; fails if they disagree. */
  checkTerms(): number {
    let term = -1;
    for (const id of this.ids) {
      if (!this.isConnected(id) || !this.isAlive(id)) continue;
      const t = this.getState(id).term;
      if (term === -1) term = t;
      else if (t !== term) throw new Error(`Servers disagree on term: ${term} vs ${t}`);
    }
    return term;
  }

  /** Fails if a connected node thinks it leads. */
  checkNoLeader(): void {
    for (const id of this.ids) {
      if (this.isConnected(id) && this.isAlive(id) && this.getState(id).isLeader) {
        throw new Error(
          `Expected no leader among connected servers, but node ${id} claims to lead`,
        );
      }
    }
  }

  /** How many nodes applied `index`, and the command there. */
  nCommitted(index: number): { count: number; data: Uint8Array | undefined } {
    let count = 0;
    for (const id of this.ids) if (this.applied(id) >= index) count++;
    return { count, data: this.oracle.applied.get(index)?.data };
  }

  /**
   * The lab's one(): find a leader, propose, and wait up to 2 s for `expected` nodes to apply
   * it; retry (if allowed) for up to 10 virtual s. Returns the index.
   */
  async one(data: Uint8Array, expected: number, retry: boolean): Promise<number> {
    const t0 = this.now;
    let startAt = 0;
    while (this.now - t0 < 10_000) {
      let index = -1;
      for (let k = 0; k < this.n; k++) {
        startAt = (startAt + 1) % this.n;
        const id = this.ids[startAt];
        if (!this.isConnected(id) || !this.isAlive(id)) continue;
        const r = await this.start1(id, data);
        if (r.isLeader) {
          index = r.index;
          break;
        }
      }
      if (index !== -1) {
        const t1 = this.now;
        while (this.now - t1 < 2_000) {
          const { count, data: got } = this.nCommitted(index);
          if (count > 0 && count >= expected && got && sameBytes(got, data)) return index;
          await this.run(20);
        }
        if (!retry) {
          throw new Error(`one(${uncmd(data).slice(0, 20)}) failed to reach agreement`);
        }
      } else {
        await this.run(50);
      }
    }
    throw new Error(
      `one(${uncmd(data).slice(0, 20)}) failed to reach agreement in 10 s: ${this.describe()}`,
    );
  }

  /**
   * one() for several commands at once, like the lab's concurrent one() calls: each is proposed
   * on the current leader and re-proposed if it has not reached `expected` nodes within 2 s.
   */
  async oneAll(cmds: Uint8Array[], expected: number): Promise<number[]> {
    const t0 = this.now;
    const state = cmds.map(() => ({ index: -1, since: 0, done: false }));
    while (this.now - t0 < 10_000) {
      let leader: NodeId | undefined;
      for (const id of this.ids) {
        if (this.isConnected(id) && this.isAlive(id) && this.getState(id).isLeader) leader = id;
      }
      for (let i = 0; i < cmds.length; i++) {
        const s = state[i];
        if (s.done) continue;
        if (s.index > 0) {
          const { count, data } = this.nCommitted(s.index);
          if (count >= expected && data && sameBytes(data, cmds[i])) {
            s.done = true;
            continue;
          }
        }
        if ((s.index < 0 || this.now - s.since >= 2_000) && leader !== undefined) {
          const r = await this.start1(leader, cmds[i]);
          if (r.isLeader) {
            s.index = r.index;
            s.since = this.now;
          }
        }
      }
      if (state.every((s) => s.done)) return state.map((s) => s.index);
      await this.run(20);
    }
    throw new Error(`oneAll() failed to reach agreement in 10 s`);
  }

  /** The lab's wait(): until `n` nodes applied index (or the term moved past startTerm). */
  async wait(index: number, n: number, startTerm: number): Promise<Uint8Array | undefined> {
    let to = 10;
    for (let iters = 0; iters < 30; iters++) {
      const { count } = this.nCommitted(index);
      if (count >= n) break;
      await this.run(to);
      if (to < 1000) to *= 2;
      if (startTerm > -1) {
        for (const id of this.ids) {
          if (this.isAlive(id) && this.getState(id).term > startTerm) return undefined;
        }
      }
    }
    const { count, data } = this.nCommitted(index);
    if (count < n) throw new Error(`Only ${count} decided for index ${index}; wanted ${n}`);
    return data;
  }
}

function before(a: Delivery, b: Delivery): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Rough msgpack size of a message: fixed fields plus entry/snapshot payloads. */
export function approxBytes(m: Message): number {
  let size = 40;
  if (m.type === "app") { for (const e of m.entries) size += e.data.length + 16; }
  if (m.type === "snap") size += m.data.length + 8 * m.peers.length;
  return size;
}

/**
 * Runs a simulated scenario with a seed (SEED env overrides), cleaning up, and prints the seed
 * and the last events on failure so `SEED=n deno test ...` replays it.
 */
export async function withCluster(
  name: string,
  opts: Omit<ClusterOptions, "seed"> & { seed?: number },
  body: (c: Cluster) => Promise<void>,
): Promise<void> {
  const env = Deno.env.get("SEED");
  const seed = env !== undefined ? Number(env) : opts.seed ?? hashName(name);
  const c = new Cluster({ ...opts, seed });
  try {
    await c.start();
    await body(c);
  } catch (err) {
    console.error(`${name} failed with SEED=${seed} at virtual t=${Math.round(c.now)} ms`);
    console.error(c.report());
    throw err;
  } finally {
    await c.shutdown();
  }
}

function hashName(s: string): number {
  return fnv(0x811c9dc5, enc.encode(s));
}
