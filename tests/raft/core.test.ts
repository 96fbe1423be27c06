/**
 * Unit tests of the pure core through RawNode, with a hand-driven synchronous network:
 * the Figure 8 commit rule, fast backup, group commit, flow control, ReadIndex and chunked
 * InstallSnapshot with a corrupted transfer.
 */
import assert from "node:assert/strict";
import { RawNode } from "../../raft/raw_node.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { Entry, Message, NodeId, Ready } from "../../raft/types.ts";
import type { RaftConfig } from "../../raft/raft.ts";
import { crc32c } from "../../util/crc32c.ts";

const enc = new TextEncoder();

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

interface Peer {
  raw: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  readCtxs: number[];
}

/** A synchronous network of RawNodes; `filter` may drop or rewrite messages. */
class Net {
  peers = new Map<NodeId, Peer>();
  queue: Message[] = [];
  sent: Message[] = [];
  filter: (m: Message) => Message | undefined = (m) => m;

  constructor(
    ids: NodeId[],
    config: Partial<RaftConfig> = {},
    storages?: Map<NodeId, MemoryStorage>,
  ) {
    for (const id of ids) {
      const storage = storages?.get(id) ?? new MemoryStorage(ids);
      const raw = new RawNode({ id, peers: ids, storage, rand: rng(id), config });
      this.peers.set(id, { raw, storage, applied: [], readCtxs: [] });
    }
  }

  get(id: NodeId): Peer {
    return this.peers.get(id)!;
  }

  /** Processes every Ready and delivers every message until quiet. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const p of this.peers.values()) {
        while (p.raw.hasReady()) {
          busy = true;
          const rd = p.raw.ready();
          this.#handle(p, rd);
        }
      }
      if (this.queue.length > 0) {
        busy = true;
        const q = this.queue;
        this.queue = [];
        for (const m of q) {
          const f = this.filter(m);
          if (f) this.peers.get(f.to)?.raw.step(f);
        }
      }
      if (!busy) return;
    }
    throw new Error("Network did not settle");
  }

  #handle(p: Peer, rd: Ready): void {
    void p.storage.save(rd.hardState, rd.entries, rd.snapshot);
    for (const m of [...rd.messages, ...rd.messagesAfterSave]) {
      this.sent.push(m);
      this.queue.push(m);
    }
    for (const e of rd.committedEntries) p.applied.push(e);
    for (const rs of rd.readStates) p.readCtxs.push(rs.ctx);
    p.raw.advance(rd);
  }

  elect(id: NodeId): void {
    this.get(id).raw.campaign();
    this.settle();
    assert.equal(this.get(id).raw.role, "leader");
  }
}

Deno.test("Election: campaign with PreVote elects, no-op entry commits everywhere", () => {
  const net = new Net([1, 2, 3]);
  net.elect(1);
  const types = net.sent.map((m) => m.type);
  assert.ok(types.includes("preVote") && types.includes("vote"));
  for (let i = 0; i < 5; i++) for (const p of net.peers.values()) p.raw.tick();
  net.settle();
  for (const p of net.peers.values()) {
    assert.equal(p.raw.commit, 1);
    assert.equal(p.raw.term, 1);
  }
});

Deno.test("Group commit: proposals before one ready() share one append per follower", () => {
  const net = new Net([1, 2, 3]);
  net.elect(1);
  net.sent = [];
  const leader = net.get(1).raw;
  for (let i = 0; i < 20; i++) assert.equal(leader.propose(enc.encode(`c${i}`)), 2 + i);
  const rd = leader.ready();
  assert.equal(rd.entries.length, 20);
  const apps = rd.messages.filter((m) => m.type === "app");
  assert.equal(apps.length, 2, "one append per follower");
  assert.equal(rd.messages.length, 2, "the leader's appends may go out before its own write");
  for (const m of apps) assert.equal(m.type === "app" && m.entries.length, 20);
});

Deno.test("Figure 8: a leader never commits an old-term entry by counting replicas", () => {
  // Logs: node 1 (leader-to-be, term 3) and node 2 hold entry 2 from term 2; node 3 holds
  // entry 2 from term 3 of another node. Node 1 must not commit index 2 merely because a
  // majority (1 and 2) has it: only once an entry of its own term is replicated.
  const ids = [1, 2, 3, 4, 5];
  const stores = new Map<NodeId, MemoryStorage>();
  const e = (index: number, term: number): Entry => ({
    index,
    term,
    data: enc.encode(`${index}/${term}`),
  });
  for (const id of ids) {
    const s = new MemoryStorage(ids);
    const log = id <= 2 ? [e(1, 1), e(2, 2)] : id === 3 ? [e(1, 1), e(2, 3)] : [e(1, 1)];
    void s.save({ term: 4, vote: 0, commit: 1 }, log);
    stores.set(id, s);
  }
  const net = new Net(ids, {}, stores);
  // Every append carrying the leader's term-5 no-op is lost, so no follower holds an entry of
  // the leader's term; then nodes 2 and 4 acknowledge index 2 (the old term-2 entry).
  net.filter = (m) => (m.type === "app" && m.entries.some((x) => x.term === 5) ? undefined : m);
  net.get(1).raw.campaign();
  net.settle();
  assert.equal(net.get(1).raw.role, "leader");
  assert.equal(net.get(1).raw.term, 5);
  const leader = net.get(1).raw;
  leader.step({
    type: "appResp",
    from: 2,
    to: 1,
    term: leader.term,
    index: 2,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
  });
  leader.step({
    type: "appResp",
    from: 4,
    to: 1,
    term: leader.term,
    index: 2,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
  });
  assert.equal(leader.commit, 1, "committed an old-term entry by counting replicas");
  net.filter = (m) => m;
  for (let i = 0; i < 10; i++) leader.tick();
  net.settle();
  assert.equal(leader.commit, 3, "commits once its own no-op is on a majority");
});

Deno.test("Fast backup: a 50-entry conflicting suffix is replaced in a few round trips", () => {
  const ids = [1, 2, 3];
  const stores = new Map<NodeId, MemoryStorage>();
  const mk = (from: number, n: number, term: number, tag: string): Entry[] =>
    Array.from(
      { length: n },
      (_, i) => ({ index: from + i, term, data: enc.encode(`${tag}${i}`) }),
    );
  const common = mk(1, 5, 1, "c");
  for (const id of ids) {
    const s = new MemoryStorage(ids);
    const log = id === 3
      ? [...common, ...mk(6, 50, 2, "x")] // stale suffix from an old leader
      : [...common, ...mk(6, 30, 3, "y")];
    void s.save({ term: 3, vote: 0, commit: 5 }, log);
    stores.set(id, s);
  }
  const net = new Net(ids, {}, stores);
  net.elect(1);
  const rejects = net.sent.filter((m) => m.type === "appResp" && m.reject && m.from === 3);
  assert.ok(rejects.length <= 2, `${rejects.length} rejections to back up 50 entries`);
  for (let i = 0; i < 5; i++) net.get(1).raw.tick();
  net.settle();
  const s3 = net.get(3).storage;
  assert.equal(s3.lastIndex(), net.get(1).storage.lastIndex());
  assert.equal(s3.term(6), 3);
});

Deno.test("Flow control: in-flight appends per follower are bounded", () => {
  const net = new Net([1, 2, 3], { maxInflightMsgs: 4 });
  net.elect(1);
  const leader = net.get(1).raw;
  net.filter = () => undefined; // followers never answer
  let apps = 0;
  for (let i = 0; i < 20; i++) {
    leader.propose(enc.encode(`x${i}`));
    const rd = leader.ready();
    apps += rd.messages.filter((m) => m.type === "app" && m.to === 2).length;
    void net.get(1).storage.save(rd.hardState, rd.entries, rd.snapshot);
    leader.advance(rd);
  }
  assert.equal(apps, 4, "more appends in flight than maxInflightMsgs");
});

Deno.test("ReadIndex: confirmed by a heartbeat quorum, only after a commit in the term", () => {
  const net = new Net([1, 2, 3]);
  const leader = net.get(1).raw;
  leader.campaign();
  // Deliver only the election traffic, so the no-op is not yet committed.
  net.filter = (m) => (m.type === "app" ? undefined : m);
  net.settle();
  assert.equal(leader.role, "leader");
  const ctx = leader.readIndex();
  assert.ok(ctx > 0);
  net.settle();
  assert.deepEqual(net.get(1).readCtxs, [], "read served before the leader committed in its term");
  net.filter = (m) => m;
  for (let i = 0; i < 5; i++) leader.tick();
  net.settle();
  assert.equal(leader.commit, 1);
  assert.deepEqual(net.get(1).readCtxs, [ctx], "read released once the no-op committed");
  // A new read needs a fresh heartbeat quorum: with followers silent it is never confirmed.
  net.filter = (m) => (m.type === "heartbeatResp" ? undefined : m);
  const ctx2 = leader.readIndex();
  net.settle();
  assert.deepEqual(net.get(1).readCtxs, [ctx]);
  net.filter = (m) => m;
  for (let i = 0; i < 5; i++) leader.tick();
  net.settle();
  assert.deepEqual(net.get(1).readCtxs, [ctx, ctx2]);
  assert.equal(net.get(2).raw.readIndex(), 0, "a follower cannot serve ReadIndex");
});

Deno.test("ReadIndex: reads registered in one turn share one heartbeat round", () => {
  const net = new Net([1, 2, 3]);
  const leader = net.get(1).raw;
  leader.campaign();
  net.settle();
  assert.equal(leader.commit, 1, "the no-op of the term is committed");
  net.sent = [];
  const ctxs = [leader.readIndex(), leader.readIndex(), leader.readIndex()];
  net.settle();
  const heartbeats = net.sent.filter((m) => m.type === "heartbeat");
  assert.deepEqual(heartbeats.map((m) => m.to).sort(), [2, 3], "one heartbeat per follower");
  assert.deepEqual(net.get(1).readCtxs, ctxs, "every read released by that one round");
});

Deno.test("InstallSnapshot: chunked, verified, and a corrupted transfer is never installed", () => {
  const ids = [1, 2, 3];
  const net = new Net(ids, { snapshotChunkBytes: 100 });
  net.elect(1);
  const leader = net.get(1);
  for (let i = 0; i < 10; i++) leader.raw.propose(enc.encode(`v${i}`));
  for (let i = 0; i < 5; i++) leader.raw.tick();
  net.settle();
  // Node 3 falls behind; the leader compacts past it.
  net.filter = (m) => (m.to === 3 || m.from === 3 ? undefined : m);
  for (let i = 0; i < 10; i++) leader.raw.propose(enc.encode(`w${i}`));
  net.settle();
  const data = new Uint8Array(1050).map((_, i) => i & 0xff);
  const idx = leader.raw.commit;
  void leader.storage.compact({
    meta: { index: idx, term: leader.raw.term, conf: { peers: ids } },
    data,
  });
  // First attempt: flip a byte in one chunk. The follower must reject and never install.
  let corrupted = false;
  net.filter = (m) => {
    if (m.type === "snap" && m.offset === 500 && !corrupted) {
      corrupted = true;
      const bad = m.data.slice();
      bad[3] ^= 0xff;
      return { ...m, data: bad };
    }
    return m;
  };
  const installs: number[] = [];
  const chunks: number[] = [];
  for (let round = 0; round < 200; round++) {
    for (const p of net.peers.values()) p.raw.tick();
    for (const [id, p] of net.peers) {
      while (p.raw.hasReady()) {
        const rd = p.raw.ready();
        if (rd.snapshot) {
          installs.push(id);
          assert.deepEqual(rd.snapshot.data, data, "installed snapshot differs");
          assert.equal(crc32c(rd.snapshot.data), crc32c(data));
        }
        for (const m of rd.messages) if (m.type === "snap") chunks.push(m.data.length);
        void p.storage.save(rd.hardState, rd.entries, rd.snapshot);
        net.queue.push(...rd.messages, ...rd.messagesAfterSave);
        p.raw.advance(rd);
      }
    }
    const q = net.queue;
    net.queue = [];
    for (const m of q) {
      const f = net.filter(m);
      if (f) net.get(f.to).raw.step(f);
    }
  }
  assert.ok(corrupted, "no chunk was corrupted");
  assert.deepEqual(installs, [3], "exactly one (intact) install on node 3");
  assert.ok(chunks.every((n) => n <= 100), "a chunk exceeded snapshotChunkBytes");
  assert.equal(net.get(3).storage.snapshot().meta.index, idx);
  assert.equal(net.get(3).raw.commit, leader.raw.commit);
});
