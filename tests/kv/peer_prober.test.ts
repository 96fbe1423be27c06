/**
 * The status probe in-process: a member that answers is up with its HTTP address and round trip,
 * one that does not is down with the reason, and a wildcard HTTP bind is advertised by host.
 */
import assert from "node:assert/strict";
import {
  advertisedHttp,
  PeerProber,
  type PeerStatusReply,
  STATUS_RPC_METHOD,
} from "../../kv/peer_prober.ts";
import type { MemberReport } from "../../kv/node_status.ts";
import { RpcClient, RpcServer } from "../../net/rpc.ts";
import { sleep } from "../../util/sleep.ts";
import { freePort } from "../lib/cluster.ts";

Deno.test("peer prober: up members report their HTTP address and round trip, dead ones are down", async () => {
  const server = new RpcServer({ log: () => {} });
  const reply: PeerStatusReply = {
    id: 2,
    http: "127.0.0.1:8002",
    role: "leader",
    term: 7,
    leader: 2,
    commit: 40,
    applied: 39,
  };
  server.handle(STATUS_RPC_METHOD, () => reply);
  const live = server.listen("127.0.0.1", 0);
  const dead = { hostname: "127.0.0.1", port: freePort() }; // nothing listens there
  const peers = new Map([[1, { hostname: "127.0.0.1", port: 1 }], [2, live], [3, dead]]);
  const clients = new Map(
    [2, 3].map((id) => [id, new RpcClient(peers.get(id)!, { maxBackoffMs: 50 })]),
  );
  const rtts: number[] = [];
  const prober = new PeerProber({
    selfId: 1,
    peers: () => peers,
    client: (id) => clients.get(id),
    intervalMs: 50,
    timeoutMs: 2_000,
    onRoundTrip: (peer, seconds) => {
      assert.equal(peer, 2);
      rtts.push(seconds);
    },
  });
  const self: MemberReport = { id: 1, peer: "127.0.0.1:1", state: "self" };
  try {
    assert.deepEqual(prober.members(self).map((m) => m.state), ["self", "unknown", "unknown"]);
    prober.start();
    let members = prober.members(self);
    for (let i = 0; i < 400 && members.some((m) => m.state === "unknown"); i++) {
      await sleep(25);
      members = prober.members(self);
    }
    const [, up, down] = members;
    assert.equal(up.state, "up");
    assert.equal(up.http, "127.0.0.1:8002");
    assert.equal(up.role, "leader");
    assert.equal(up.applied, 39);
    assert.ok(up.rttMs !== undefined && up.rttMs >= 0);
    assert.ok(rtts.length >= 1 && rtts.every((s) => s >= 0));
    assert.equal(prober.reachable(2), true);
    assert.equal(down.state, "down");
    assert.equal(down.http, undefined);
    assert.equal(typeof down.error, "string");
    assert.equal(prober.reachable(3), false);
    assert.deepEqual(prober.reachability(), [[2, true], [3, false]]);

    // The live member goes away: it turns down, keeps its last known address and says when it
    // was last seen.
    await server.close();
    for (let i = 0; i < 400 && prober.reachable(2); i++) await sleep(25);
    const gone = prober.members(self)[1];
    assert.equal(gone.state, "down");
    assert.equal(gone.http, "127.0.0.1:8002");
    assert.ok(gone.lastSeenAgoMs !== undefined);
  } finally {
    prober.stop();
    for (const client of clients.values()) client.close();
    await server.close();
  }
});

Deno.test("peer prober: a wildcard HTTP bind is advertised with the peer host", () => {
  const peer = { hostname: "10.0.0.2", port: 7001 };
  assert.equal(advertisedHttp({ hostname: "0.0.0.0", port: 8001 }, peer), "10.0.0.2:8001");
  assert.equal(advertisedHttp({ hostname: "::", port: 8001 }, peer), "10.0.0.2:8001");
  assert.equal(advertisedHttp({ hostname: "127.0.0.1", port: 8001 }, peer), "127.0.0.1:8001");
  assert.equal(
    advertisedHttp({ hostname: "0.0.0.0", port: 8001 }, { hostname: "fd00::2", port: 7001 }),
    "[fd00::2]:8001",
  );
});
