/**
 * Security and resource limits against real processes: forged Raft traffic from connections
 * that did not prove membership changes nothing, HTTP tokens, slowloris, the partial-frame
 * budget, and a node under a low open-file limit that keeps serving its peers.
 */
import assert from "node:assert/strict";
import { encodeCommand } from "../../kv/commands.ts";
import { encodeFrame } from "../../net/frame.ts";
import type { ByteConn } from "../../net/framed_conn.ts";
import { clientHello, type Hello, peerHello } from "../../net/handshake.ts";
import { dialTls } from "../../net/peer_tls.ts";
import { fetchWithTimeout, ProcessCluster } from "../lib/cluster.ts";
import { call, get, poll, put, SERVE_ARGS } from "./daemon_helpers.ts";

/** Resolves true once the server closed `conn` (reads end or fail); false if still open. */
async function closedByServer(conn: ByteConn, guardMs = 30_000): Promise<boolean> {
  const buffer = new Uint8Array(64 * 1024);
  const deadline = performance.now() + guardMs;
  while (performance.now() < deadline) {
    const timer = new Promise<"open">((r) => setTimeout(() => r("open"), 1000));
    const read = conn.read(buffer).catch(() => null);
    const n = await Promise.race([read, timer]);
    if (n === null) return true;
  }
  return false;
}

/** Sends a Hello and a batch of Raft messages over `conn`, as a forger would. */
async function sendForgery(conn: ByteConn, hello: Hello, messages: unknown[]): Promise<void> {
  await conn.write(encodeFrame(hello)).catch(() => {});
  await conn.write(encodeFrame([3, "raft", messages])).catch(() => {});
}

/** What forged messages must not change: every node's term and leader, and elections held. */
interface Terms {
  /** "id:term/leader" for every node. */
  terms: string;
  /** Real elections the nodes started (a candidate raising its own term). */
  elections: number;
  /** The highest term any node is at. */
  highest: number;
}

/** Every node's term and leader; a node that misses a /status probe is asked again. */
async function termsAndLeaders(cluster: ProcessCluster): Promise<Terms> {
  const parts: string[] = [];
  let elections = 0;
  let highest = 0;
  for (const id of cluster.ids) {
    const s = await cluster.answeredStatus(id);
    parts.push(`${id}:${s.term}/${s.leader}`);
    elections += (s.counters as { electionsStarted: number }).electionsStarted;
    highest = Math.max(highest, s.term);
  }
  return { terms: parts.join(" "), elections, highest };
}

/** The forged heartbeat's term: the largest a frame may carry. */
const FORGED_TERM = 2 ** 53 - 1;

Deno.test("security: forged AppendEntries and a huge-term heartbeat from unauthenticated connections change nothing", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const leader = await cluster.waitForLeader();
    assert.equal((await put(cluster.url(leader), "real", "1")).status, 200);
    const follower = cluster.ids.find((id) => id !== leader)!;
    const status = await cluster.answeredStatus(follower);
    const before = await termsAndLeaders(cluster);
    const forged = [
      {
        type: "app",
        from: leader,
        to: follower,
        term: status.term,
        index: status.commit,
        logTerm: status.term,
        entries: [{
          index: status.commit + 1,
          term: status.term,
          data: encodeCommand({ op: "put", key: "forged", value: new Uint8Array([1]), time: 0 }),
        }],
        commit: status.commit + 1,
      },
      { type: "heartbeat", from: leader, to: follower, term: FORGED_TERM, commit: 0, ctx: 0 },
    ];
    const creds = cluster.credentials!;
    const address = { hostname: "127.0.0.1", port: cluster.node(follower).peerPort };
    const attempts: [string, () => Promise<ByteConn>, Hello][] = [
      ["plain TCP", () => Deno.connect(address), peerHello(leader)],
      [
        "TLS without a client certificate",
        () => dialTls(address, { ca: creds.ca }),
        peerHello(leader),
      ],
      // A client token admits KV calls, never Raft messages.
      [
        "TLS with a client token",
        () => dialTls(address, { ca: creds.ca }),
        clientHello(creds.token),
      ],
    ];
    for (const [what, open, hello] of attempts) {
      const conn = await open();
      await sendForgery(conn, hello, forged);
      assert.ok(await closedByServer(conn), `${what}: the connection was not closed`);
      conn.close();
    }
    // Give anything that did get through time to show, then compare.
    await new Promise((r) => setTimeout(r, 500));
    const after = await termsAndLeaders(cluster);
    // The forged heartbeat's term would show on the follower (and, through it, everywhere).
    assert.ok(after.highest < FORGED_TERM, `a node took the forged term: ${after.terms}`);
    // Otherwise nothing changes; on a loaded machine a late heartbeat may let a real election
    // happen meanwhile, which a node counts when it starts one. A forgery causes none.
    if (after.terms !== before.terms) {
      assert.ok(
        after.elections > before.elections,
        `terms or leaders moved without an election: ${before.terms} -> ${after.terms}\n` +
          cluster.dump(),
      );
    }
    for (const id of cluster.ids) {
      assert.equal((await get(cluster.url(id), "forged", { query: "stale=true" })).status, 404);
    }
    assert.equal((await get(cluster.url(follower), "real")).body, "1");
    const metrics = (await call(`${cluster.url(follower)}/metrics`)).body;
    const refused = Number(
      /raftmr_connections_refused_total\{listener="peer"\} (\d+)/.exec(metrics)?.[1],
    );
    assert.ok(refused >= 3, metrics);
  } finally {
    await cluster.stop();
  }
});

Deno.test("security: the same forged heartbeat does depose the leader of an insecure cluster (the control)", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS, insecure: true });
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.ids.find((id) => id !== leader)!;
    const term = (await cluster.answeredStatus(follower)).term;
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: cluster.node(follower).peerPort,
    });
    try {
      await sendForgery(conn, peerHello(leader), [
        { type: "heartbeat", from: leader, to: follower, term: term + 1000, commit: 0, ctx: 0 },
      ]);
      await poll(
        async () => ((await cluster.answeredStatus(follower)).term >= term + 1000
          ? true
          : undefined),
        () => `the forged term never arrived\n${cluster.dump()}`,
      );
    } finally {
      conn.close();
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("security: HTTP without the token gets 401 while /healthz, /metrics and /status stay open", async () => {
  const cluster = await ProcessCluster.start({ nodes: 1, extraArgs: SERVE_ARGS });
  try {
    const base = cluster.url(1);
    const bare = async (path: string, init: RequestInit = {}) => {
      const response = await fetchWithTimeout(`${base}${path}`, init, 8000);
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await bare("/v1/kv/k", { method: "PUT", body: "v" }), 401);
    assert.equal(await bare("/v1/kv/k"), 401);
    assert.equal(await bare("/v1/kv/other?stale=true"), 401);
    assert.equal(
      await bare("/v1/kv/k", { headers: { authorization: "Bearer wrong-token-wrong-token" } }),
      401,
    );
    assert.equal(await bare("/healthz"), 200);
    assert.equal(await bare("/metrics"), 200);
    assert.equal(await bare("/status"), 200); // Read-only pages are open by default.
    // With the token (the helpers send it): served.
    assert.equal((await put(base, "k", "v")).status, 200);
    assert.equal((await get(base, "k")).body, "v");
    const metrics = (await call(`${base}/metrics`)).body;
    assert.match(metrics, /raftmr_http_unauthorized_total [4-9]/);
  } finally {
    await cluster.stop();
  }
});

Deno.test("security: connections that never finish their request headers are closed (slowloris)", async () => {
  const cluster = await ProcessCluster.start({
    nodes: 1,
    extraArgs: [...SERVE_ARGS, "--http-header-timeout", "1s", "--http-idle-timeout", "2s"],
  });
  try {
    const port = cluster.node(1).httpPort;
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < 20; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: "));
      conns.push(conn);
    }
    for (const [i, conn] of conns.entries()) {
      assert.ok(await closedByServer(conn), `slow connection ${i} is still open`);
      conn.close();
    }
    // An idle keep-alive connection is closed too, after its request was answered.
    const idle = await Deno.connect({ hostname: "127.0.0.1", port });
    await idle.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    const n = await idle.read(new Uint8Array(4096));
    assert.ok(n !== null && n > 0);
    assert.ok(await closedByServer(idle), "an idle keep-alive connection is still open");
    idle.close();
    const metrics = (await call(`${cluster.url(1)}/metrics`)).body;
    const timeouts = Number(/raftmr_http_timeouts_total (\d+)/.exec(metrics)?.[1]);
    assert.ok(timeouts >= 21, metrics);
    assert.equal((await call(`${cluster.url(1)}/healthz`)).status, 200);
  } finally {
    await cluster.stop();
  }
});

Deno.test("security: half-sent large frames from many connections stay within the budget", async () => {
  const budget = 8 * 1024 * 1024;
  // Insecure: raw frames must reach the decoder (a secure port would stop them at TLS).
  const cluster = await ProcessCluster.start({
    nodes: 1,
    insecure: true,
    extraArgs: [...SERVE_ARGS, "--frame-budget", String(budget)],
  });
  try {
    const port = cluster.node(1).peerPort;
    const conns: Deno.Conn[] = [];
    const half = new Uint8Array(2 * 1024 * 1024);
    for (let i = 0; i < 20; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      // A Hello (an insecure node admits a client on its word), then the first half of a
      // 4 MiB frame that never ends.
      // Like any client, wait for the Welcome: until then frames are limited to a Hello's size.
      await conn.write(encodeFrame(clientHello()));
      assert.ok((await conn.read(new Uint8Array(1024))) !== null, "no welcome");
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, 4 * 1024 * 1024);
      await conn.write(header).catch(() => {});
      await conn.write(half).catch(() => {});
    }
    let metrics = "";
    await poll(async () => {
      metrics = (await call(`${cluster.url(1)}/metrics`)).body;
      const refusals = Number(/raftmr_partial_frame_refusals_total (\d+)/.exec(metrics)?.[1]);
      return refusals > 0 ? true : undefined;
    }, () => `no connection was refused over the budget:\n${metrics}`);
    const held = Number(/raftmr_partial_frame_bytes (\d+)/.exec(metrics)?.[1]);
    assert.ok(held <= budget, `partial frames hold ${held} bytes, over the ${budget} budget`);
    for (const conn of conns) conn.close();
    // Closing the connections gives the budget back.
    await poll(async () => {
      metrics = (await call(`${cluster.url(1)}/metrics`)).body;
      return /raftmr_partial_frame_bytes 0\b/.test(metrics) ? true : undefined;
    }, () => `the budget was not released:\n${metrics}`);
    assert.equal((await put(cluster.url(1), "after", "ok")).status, 200);
  } finally {
    await cluster.stop();
  }
});

Deno.test("security: idle connections up to a low open-file limit leave the node serving and reachable by its peers", async () => {
  const cluster = await ProcessCluster.start({
    nodes: 3,
    openFileLimit: 256,
    extraArgs: [...SERVE_ARGS, "--http-header-timeout", "2s"],
  });
  const flood: Deno.Conn[] = [];
  let flooding = true;
  try {
    const leader = await cluster.waitForLeader();
    const [target, other] = cluster.ids.filter((id) => id !== leader);
    // Keep more idle connections open to the target's HTTP and peer ports than it has files,
    // topping them up as the node closes them, for the whole test.
    const floodLoop = (async () => {
      while (flooding) {
        for (const port of [cluster.node(target).httpPort, cluster.node(target).peerPort]) {
          for (let i = 0; i < 20 && flood.length < 600; i++) {
            try {
              flood.push(await Deno.connect({ hostname: "127.0.0.1", port }));
            } catch {
              break; // The backlog is full: fine, that is the point.
            }
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // The flood is on once more connections were opened than the node has files (not after a
    // fixed time: a loaded machine opens them slowly).
    await poll(
      () => (flood.length > 256 ? true : undefined),
      () => `only ${flood.length} flood connections were opened`,
    );
    // The target must accept new peer connections: restart the other follower (it dials the
    // target afresh), then take the leader away; the two must elect one of them.
    await cluster.kill(other);
    cluster.startNode(other);
    await cluster.waitForHttp(other);
    await cluster.kill(leader);
    const next = await cluster.waitForLeader([target, other], 1200);
    assert.ok(next === target || next === other);
    assert.ok(cluster.node(target).child, "the target node exited");
    // And it serves clients once a slot is free (idle ones are closed by the header timeout).
    await poll(async () => {
      const r = await call(`${cluster.url(target)}/healthz`, {}, 3000);
      return r.status === 200 ? true : undefined;
    }, () => `node ${target} never answered HTTP during the flood\n${cluster.dump()}`);
    flooding = false;
    await floodLoop;
    assert.match(cluster.node(target).output.join(""), /Refused a (http|peer) connection/i);
  } finally {
    flooding = false;
    for (const conn of flood) {
      try {
        conn.close();
      } catch {
        // Closed by the node already.
      }
    }
    await cluster.stop();
  }
});
