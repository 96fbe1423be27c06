import assert from "node:assert/strict";
import { RpcServer } from "../../net/rpc.ts";
import { PeerTransport } from "../../net/transport.ts";

interface Note {
  to: number;
  n: number;
}

/** A node's transport and what it received and reported, on its own listening server. */
class Peer {
  readonly received: Note[] = [];
  readonly unreachable: number[] = [];
  transport!: PeerTransport<Note>;
  constructor(readonly id: number, readonly server: RpcServer) {}

  start(peers: Map<number, { hostname: string; port: number }>): void {
    this.transport = new PeerTransport<Note>({
      selfId: this.id,
      peers,
      server: this.server,
      onMessages: (batch) => this.received.push(...(batch as Note[])),
      onUnreachable: (id) => this.unreachable.push(id),
    });
  }

  async stop(): Promise<void> {
    this.transport.close();
    await this.server.close();
  }
}

/** A plain peer port of node `id`: the handshake runs, credentials are not required. */
function peerServer(id: number): RpcServer {
  return new RpcServer({ handshake: { selfId: id, requirePeerCertificate: false } });
}

/** Waits for `check`, up to a generous 30 s (a dial and handshake on a loaded machine). */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A port nothing listens on: bound once, then released. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("PeerTransport: batches sent while the first dial is under way arrive, in order", async () => {
  const a = new Peer(1, peerServer(1));
  const b = new Peer(2, peerServer(2));
  const peers = new Map([
    [1, a.server.listen("127.0.0.1", 0)],
    [2, b.server.listen("127.0.0.1", 0)],
  ]);
  a.start(peers);
  b.start(peers);
  try {
    // Straight after construction no connection is open yet: these used to be dropped, which
    // cost a first vote request a whole election timeout.
    for (let n = 1; n <= 5; n++) a.transport.send([{ to: 2, n }]);
    await until(() => b.received.length === 5, "five batches at peer 2");
    assert.deepEqual(b.received.map((m) => m.n), [1, 2, 3, 4, 5]);
    assert.deepEqual(a.unreachable, []);
    // Messages for several peers in one call are split per destination.
    b.transport.send([{ to: 1, n: 10 }, { to: 1, n: 11 }]);
    await until(() => a.received.length === 2, "two messages at peer 1");
    assert.deepEqual(a.received.map((m) => m.n), [10, 11]);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("PeerTransport: a batch for a peer nobody answers for is dropped and reported", async () => {
  const a = new Peer(1, peerServer(1));
  const peers = new Map([
    [1, a.server.listen("127.0.0.1", 0)],
    [3, { hostname: "127.0.0.1", port: closedPort() }],
  ]);
  a.start(peers);
  try {
    a.transport.send([{ to: 3, n: 1 }]);
    await until(() => a.unreachable.includes(3), "peer 3 reported unreachable");
    assert.equal(a.transport.reachable(3), false);
  } finally {
    await a.stop();
  }
});

Deno.test("PeerTransport: a batch sent from the unreachable report of a failed dial is settled too", async () => {
  const server = peerServer(1);
  const unreachable: number[] = [];
  let resent = false;
  const transport: PeerTransport<Note> = new PeerTransport<Note>({
    selfId: 1,
    peers: new Map([
      [1, server.listen("127.0.0.1", 0)],
      [3, { hostname: "127.0.0.1", port: closedPort() }],
    ]),
    server,
    onMessages: () => {},
    onUnreachable: (id) => {
      unreachable.push(id);
      // Raft reacts to the report at once (the driver steps and may send again), while the
      // client may not have forgotten the failed dial yet.
      if (!resent) {
        resent = true;
        transport.send([{ to: 3, n: 2 }]);
      }
    },
  });
  try {
    transport.send([{ to: 3, n: 1 }]);
    await until(() => unreachable.length >= 2, "both batches reported unreachable");
    assert.deepEqual(unreachable.slice(0, 2), [3, 3]);
  } finally {
    transport.close();
    await server.close();
  }
});
