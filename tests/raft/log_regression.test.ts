/**
 * A follower whose data directory was wiped: the leader's "log went backwards" detection must
 * survive an acknowledgement the follower sent before the wipe and the network delivered after
 * the leader noticed. Such an ack claims entries the follower no longer has; counted, it would
 * undo the detection and let a commit rest on a copy that does not exist. Scripted message by
 * message over RawNodes, so the schedule is exact.
 */
import assert from "node:assert/strict";
import { RawNode } from "../../raft/raw_node.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { Message, NodeId } from "../../raft/types.ts";

const IDS = [1, 2, 3];

class Net {
  readonly nodes = new Map<NodeId, RawNode>();
  readonly stores = new Map<NodeId, MemoryStorage>();
  /** Messages sent and not delivered yet, in order. */
  queue: Message[] = [];
  #boots = 0;

  /** Starts node `id` on fresh storage (a new node, or a wiped data directory). */
  boot(id: NodeId): RawNode {
    const storage = new MemoryStorage(IDS);
    this.stores.set(id, storage);
    const raw = new RawNode({
      id,
      peers: IDS,
      storage,
      rand: () => 0,
      // Every start of a process draws a new incarnation (RaftNode does it at random).
      incarnation: ++this.#boots,
    });
    this.nodes.set(id, raw);
    return raw;
  }

  /** Handles node `id`'s Readies: persist (in memory, at once), queue messages, advance. */
  process(id: NodeId): void {
    const raw = this.nodes.get(id)!;
    while (raw.hasReady()) {
      const rd = raw.ready();
      void this.stores.get(id)!.save(rd.hardState, rd.entries, rd.snapshot);
      this.queue.push(...rd.messages, ...rd.messagesAfterSave);
      raw.advance(rd);
    }
  }

  /** Delivers the queued messages that `pick` selects (all by default); keeps the others. */
  deliver(pick: (m: Message) => boolean = () => true): void {
    const now = this.queue.filter(pick);
    this.queue = this.queue.filter((m) => !pick(m));
    for (const m of now) this.nodes.get(m.to)!.step(m);
  }

  /** Processes and delivers until nothing moves. */
  stabilize(): void {
    for (let i = 0; i < 100; i++) {
      for (const id of this.nodes.keys()) this.process(id);
      if (this.queue.length === 0) return;
      this.deliver();
    }
    throw new Error("The network did not settle");
  }
}

Deno.test("Log went backwards: an ack sent before the wipe and delivered after the detection is ignored", () => {
  const net = new Net();
  for (const id of IDS) net.boot(id);
  const leader = net.nodes.get(1)!;
  leader.campaign();
  net.stabilize();
  assert.equal(leader.role, "leader");
  leader.propose(new TextEncoder().encode("a"));
  net.stabilize();
  assert.equal(leader.commit, 2);
  // "b" reaches both followers; node 2's ack is lost, node 3's is delayed in the network.
  const b = leader.propose(new TextEncoder().encode("b"));
  net.process(1);
  net.deliver();
  net.process(2);
  net.process(3);
  const ack = net.queue.find((m) => m.from === 3 && m.type === "appResp");
  assert.ok(ack && ack.type === "appResp" && ack.index === b && !ack.reject);
  net.queue = [];
  // Node 3's data directory is wiped and it starts again, empty.
  net.boot(3);
  // The leader's next heartbeat carries min(match, commit) = 2; node 3 says its log ends at 0.
  for (let i = 0; i < 5; i++) leader.tick();
  net.process(1);
  net.deliver((m) => m.to === 3 && m.type === "heartbeat");
  net.queue = net.queue.filter((m) => m.to !== 2); // node 2 stays silent throughout
  net.process(3);
  net.deliver((m) => m.to === 1);
  assert.equal(leader.status().progress![3].logWentBackwards, true, "the wipe was noticed");
  assert.equal(leader.status().progress![3].match, 0);
  // Now the ack node 3 sent before the wipe arrives.
  leader.step(ack);
  const pr = leader.status().progress![3];
  assert.equal(pr.logWentBackwards, true, "a stale ack undid the detection");
  assert.ok(pr.match < b, `node 3 counted at ${pr.match}: entries it no longer holds`);
  assert.ok(leader.commit < b, "entry b committed on the leader's copy and a lost one");
  // Node 3 is replicated to again from its real end, and its fresh acks count.
  net.queue = [];
  net.stabilize();
  assert.equal(net.nodes.get(3)!.status().lastIndex, b);
  assert.equal(leader.commit, b, "b commits once node 3 really holds it");
  assert.equal(leader.status().progress![3].logWentBackwards, false);
});
