import assert from "node:assert/strict";
import { clientHello, HandshakeError, peerHello } from "../../net/handshake.ts";
import { tokenDigest } from "../../net/handshake.ts";
import { dialTls } from "../../net/peer_tls.ts";
import { RpcClient, RpcServer } from "../../net/rpc.ts";
import { testCredentials } from "../lib/credentials.ts";

/** A TLS RpcServer of node 1 in a cluster {1, 2, 3}, with a "peer" and an "any" method. */
async function secureServer() {
  const creds = await testCredentials();
  const stepped: unknown[] = [];
  const server = new RpcServer({
    name: "peer",
    tls: { ...creds.node(1), ca: creds.ca },
    handshake: {
      selfId: 1,
      isPeer: (id) => [1, 2, 3].includes(id),
      requirePeerCertificate: true,
      tokenDigests: [tokenDigest(creds.token)],
    },
  });
  server.handle("raft", (params) => void stepped.push(params), "peer");
  server.handle("echo", (params) => params);
  const addr = await server.open("127.0.0.1", 0);
  return { server, addr, creds, stepped };
}

Deno.test("handshake: a peer with a cluster certificate is admitted and may call peer methods", async () => {
  const { server, addr, creds, stepped } = await secureServer();
  const client = new RpcClient(addr, {
    hello: peerHello(2),
    dial: (a) => dialTls(a, { ca: creds.ca, ...creds.node(2) }),
  });
  try {
    assert.equal(await client.call("echo", "hi"), "hi");
    assert.ok(client.notify("raft", [1]));
    const deadline = Date.now() + 30_000; // Generous: a loaded machine is slow, not wrong.
    while (stepped.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(stepped, [[1]]);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("handshake: a client with the token may call client methods but not peer ones", async () => {
  const { server, addr, creds, stepped } = await secureServer();
  const client = new RpcClient(addr, {
    hello: clientHello(creds.token),
    dial: (a) => dialTls(a, { ca: creds.ca }),
  });
  try {
    assert.equal(await client.call("echo", 5), 5);
    // A peer-only method from a client: the connection is closed, nothing is stepped.
    await assert.rejects(client.call("raft", [1]), /lost|closed/);
    assert.deepEqual(stepped, []);
    assert.ok(server.gate.refused >= 1);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("handshake: refused without a token, with a wrong token, as a peer without a certificate or with a foreign one", async () => {
  const { server, addr, creds } = await secureServer();
  const foreign = await testCredentials("foreign");
  const cases: [string, RpcClient, RegExp][] = [
    [
      "no token",
      new RpcClient(addr, {
        hello: clientHello(),
        dial: (a) => dialTls(a, { ca: creds.ca }),
      }),
      /no token/,
    ],
    [
      "wrong token",
      new RpcClient(addr, {
        hello: clientHello("x".repeat(64)),
        dial: (a) => dialTls(a, { ca: creds.ca }),
      }),
      /token is not valid/,
    ],
    [
      "peer without certificate",
      new RpcClient(addr, {
        hello: peerHello(2),
        dial: (a) => dialTls(a, { ca: creds.ca }),
      }),
      /no client certificate/,
    ],
    [
      "peer with a foreign CA's certificate",
      new RpcClient(addr, {
        hello: peerHello(2),
        dial: (a) => dialTls(a, { ca: creds.ca, ...foreign.node(2) }),
      }),
      /certificate rejected/i,
    ],
    [
      "peer not in the cluster",
      new RpcClient(addr, {
        hello: peerHello(9),
        dial: (a) => dialTls(a, { ca: creds.ca, ...creds.node(2) }),
      }),
      /not a member/,
    ],
  ];
  try {
    for (const [what, client, reason] of cases) {
      const error = await client.call("echo", 1).then(() => undefined, (e) => e);
      assert.ok(error instanceof HandshakeError, `${what}: ${error}`);
      assert.match(error.message, reason, what);
      client.close();
    }
    // A client that trusts another CA refuses the server instead.
    const distrust = new RpcClient(addr, {
      hello: clientHello(creds.token),
      dial: (a) => dialTls(a, { ca: foreign.ca }),
    });
    await assert.rejects(distrust.call("echo", 1), /Cannot connect/);
    distrust.close();
    assert.equal(server.connectionCount, 0);
  } finally {
    await server.close();
  }
});

Deno.test("handshake: plain TCP bytes to a TLS peer port are closed without a frame dispatched", async () => {
  const { server, addr, stepped } = await secureServer();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: addr.port });
    await conn.write(new TextEncoder().encode("\x00\x00\x00\x10garbage-garbage!"));
    const n = await conn.read(new Uint8Array(1024)).catch(() => null);
    // TLS answers a non-TLS hello with an alert or nothing; either way the connection ends.
    if (n !== null) assert.equal(await conn.read(new Uint8Array(1024)).catch(() => null), null);
    conn.close();
    assert.deepEqual(stepped, []);
  } finally {
    await server.close();
  }
});

Deno.test("handshake: a plain client at a TLS port is told the server speaks TLS", async () => {
  const { server, addr, creds } = await secureServer();
  const client = new RpcClient(addr, { hello: clientHello(creds.token) });
  try {
    await assert.rejects(client.call("echo", 1), /the server speaks TLS/);
  } finally {
    client.close();
    await server.close();
  }
});
