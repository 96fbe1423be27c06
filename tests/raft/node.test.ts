/**
 * RaftNode (the async driver) with real timers kept tiny (2 ms ticks) over an in-memory
 * transport that delivers through microtasks. No timing assertions: helpers poll until a
 * condition holds, bounded only to turn a hang into a failure.
 */
import assert from "node:assert/strict";
import { NotLeaderError, ProposalDroppedError } from "../../raft/errors.ts";
import { RaftNode } from "../../raft/node.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { Entry, Message, NodeId, StateMachine } from "../../raft/types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Appends every command to a list; apply() returns "ok:<command>". */
class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: Entry): unknown {
    if (e.data.length === 0) return undefined;
    const s = dec.decode(e.data);
    this.items.push(s);
    return `ok:${s}`;
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(dec.decode(data));
  }
}

const FAST = { tickMs: 2, electionTicks: 10, heartbeatTicks: 2 };

/** RaftNodes in this process over an in-memory network (the simulator's cheaper cousin). */
class NodeCluster {
  nodes = new Map<NodeId, RaftNode>();
  machines = new Map<NodeId, ListMachine>();
  storages = new Map<NodeId, MemoryStorage>();
  /** Nodes whose traffic (both directions) is dropped. */
  isolated = new Set<NodeId>();

  constructor(readonly ids: NodeId[], config: Record<string, number> = {}) {
    for (const id of ids) this.storages.set(id, new MemoryStorage(ids));
    for (const id of ids) this.boot(id, config);
  }

  boot(id: NodeId, config: Record<string, number> = {}): RaftNode {
    const sm = new ListMachine();
    const node = new RaftNode({
      id,
      peers: this.ids,
      storage: this.storages.get(id)!,
      stateMachine: sm,
      send: (msgs) => this.#send(msgs),
      config: { ...FAST, ...config },
      onFatal: (err) => {
        throw err;
      },
    });
    this.nodes.set(id, node);
    this.machines.set(id, sm);
    node.start();
    return node;
  }

  #send(msgs: Message[]): void {
    for (const m of msgs) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
      queueMicrotask(() => this.nodes.get(m.to)?.step(m));
    }
  }

  leader(): RaftNode | undefined {
    for (const n of this.nodes.values()) {
      if (!this.isolated.has(n.id) && n.status().role === "leader") return n;
    }
    return undefined;
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) await n.stop();
  }
}

async function until<T>(what: string, f: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 4000; i++) {
    const v = f();
    if (v !== undefined && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`Gave up waiting for ${what}`);
}

Deno.test("RaftNode: propose resolves with apply()'s result once applied", async () => {
  const c = new NodeCluster([1, 2, 3]);
  try {
    const leader = await until("a leader", () => c.leader());
    const r = await leader.propose(enc.encode("hello"));
    assert.equal(r.result, "ok:hello");
    assert.equal(r.term, leader.status().term);
    assert.ok(r.index >= 2, "index 1 is the leader's no-op");
    // Many proposals in one turn: all resolve, in log order, with their own results.
    const rs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => leader.propose(enc.encode(`v${i}`))),
    );
    rs.forEach((x, i) => assert.equal(x.result, `ok:v${i}`));
    for (let i = 1; i < rs.length; i++) assert.equal(rs[i].index, rs[i - 1].index + 1);
    await until("replication", () => [...c.machines.values()].every((m) => m.items.length === 51));
    for (const m of c.machines.values()) {
      assert.equal(m.items.join(), c.machines.get(leader.id)!.items.join());
    }
    assert.ok(leader.metrics.saves < 51, "group commit: fewer saves than proposals");
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: a follower rejects proposals and reads with NotLeaderError(leader)", async () => {
  const c = new NodeCluster([1, 2, 3]);
  try {
    const leader = await until("a leader", () => c.leader());
    await leader.propose(enc.encode("x"));
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    await until("the follower to know the leader", () => follower.status().leader === leader.id);
    await assert.rejects(follower.propose(enc.encode("y")), (err) => {
      assert.ok(err instanceof NotLeaderError);
      assert.equal(err.leaderHint, leader.id);
      return true;
    });
    await assert.rejects(follower.readIndex(), NotLeaderError);
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: readIndex resolves at or after every acknowledged write", async () => {
  const c = new NodeCluster([1, 2, 3]);
  try {
    const leader = await until("a leader", () => c.leader());
    const w = await leader.propose(enc.encode("w1"));
    const ri = await leader.readIndex();
    assert.ok(ri >= w.index, `read index ${ri} precedes acknowledged write ${w.index}`);
    assert.ok(leader.status().applied >= ri);
    const before = leader.status().lastIndex;
    await leader.readIndex();
    assert.equal(leader.status().lastIndex, before, "readIndex wrote to the log");
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: an isolated leader steps down and drops its pending proposal", async () => {
  const c = new NodeCluster([1, 2, 3]);
  try {
    const leader = await until("a leader", () => c.leader());
    await leader.propose(enc.encode("a"));
    c.isolated.add(leader.id);
    const pending = leader.propose(enc.encode("lost"));
    await assert.rejects(pending, ProposalDroppedError);
    assert.notEqual(leader.status().role, "leader");
    c.isolated.delete(leader.id);
    const l2 = await until("a new leader", () => c.leader());
    await l2.propose(enc.encode("b"));
    await until("convergence", () => [...c.machines.values()].every((m) => m.items.includes("b")));
    for (const m of c.machines.values()) assert.ok(!m.items.includes("lost"));
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: stop() rejects pending proposals", async () => {
  const c = new NodeCluster([1, 2, 3]);
  try {
    const leader = await until("a leader", () => c.leader());
    for (const id of c.ids) if (id !== leader.id) c.isolated.add(id);
    const pending = leader.propose(enc.encode("never"));
    // Watch it before stopping: stop() rejects it, then waits for the loop to wind down.
    const rejected = assert.rejects(pending, ProposalDroppedError);
    await leader.stop();
    await rejected;
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: single node snapshots, compacts, and restarts from snapshot + log", async () => {
  const c = new NodeCluster([7], { snapshotEntries: 5 });
  try {
    const node = await until("leadership", () => c.leader());
    for (let i = 0; i < 23; i++) await node.propose(enc.encode(`k${i}`));
    const storage = c.storages.get(7)!;
    assert.ok(node.metrics.snapshotsTaken >= 3, `${node.metrics.snapshotsTaken} snapshots`);
    assert.ok(storage.firstIndex() > 1, "log was not compacted");
    const items = c.machines.get(7)!.items.slice();
    await node.stop();
    // Restart: restore from the snapshot, re-apply the committed tail, nothing twice.
    const again = c.boot(7, { snapshotEntries: 5 });
    await until("re-applied state", () => c.machines.get(7)!.items.length === items.length);
    assert.deepEqual(c.machines.get(7)!.items, items);
    await until("leadership again", () => again.status().role === "leader");
    const r = await again.propose(enc.encode("after"));
    assert.equal(r.result, "ok:after");
    assert.deepEqual(c.machines.get(7)!.items, [...items, "after"]);
  } finally {
    await c.stop();
  }
});
