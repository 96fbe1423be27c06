/**
 * The standalone coordinator's RPC port admits only workers that present its token (issue 12):
 * a worker without one or with a wrong one is refused and gets no task; frames sent before or
 * instead of a valid Hello (a forged ask, report or heartbeat) are never handled; each refusal is
 * logged, rate-limited, and counted in /metrics. Process tests: `raftmr worker` without the token
 * exits 1 saying why, `raftmr coordinator` on a network address without a token refuses to start,
 * and `mr run` protects its own coordinator with a token it makes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Coordinator } from "../../mr/coordinator.ts";
import { RpcClient } from "../../net/rpc.ts";
import { clientHello, HANDSHAKE_VERSION, HandshakeError } from "../../net/handshake.ts";
import { decodeBody, encodeFrame } from "../../net/frame.ts";
import {
  app,
  freePort,
  gatedWc,
  mergedOutput,
  raftmr,
  reference,
  startCoordinator,
  waitFor,
  withTempDir,
  writeInputs,
} from "./helpers.ts";

const TOKEN = "a1".repeat(20);
const WRONG = "b2".repeat(20);

// deno-lint-ignore no-explicit-any
type Json = any;

/**
 * Sends `frames` on a raw TCP connection in one write and returns every frame the server sent
 * back before it closed the connection.
 */
async function rawExchange(port: number, frames: unknown[]): Promise<unknown[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(concat(frames.map(encodeFrame))).catch(() => 0);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  try {
    conn.close();
  } catch {
    // Closed by the server.
  }
  const received = concat(chunks);
  const replies: unknown[] = [];
  for (let i = 0; i + 4 <= received.length;) {
    const length = new DataView(received.buffer, i).getUint32(0);
    replies.push(decodeBody(received.slice(i + 4, i + 4 + length)));
    i += 4 + length;
  }
  return replies;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

async function metric(http: { port: number }, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
  const match = pattern.exec(text);
  assert.ok(match, `no ${pattern} in /metrics:\n${text}`);
  return Number(match[1]);
}

Deno.test("coordinator with a token: workers without it get no task, forged frames change nothing", async () => {
  await withTempDir(async (dir) => {
    const inputs = [join(dir, "a.txt"), join(dir, "b.txt")];
    for (const file of inputs) await Deno.writeTextFile(file, "hello world\n");
    const lines: string[] = [];
    const coordinator = await Coordinator.start({
      files: inputs,
      nReduce: 1,
      taskTimeoutMs: 60_000,
      outputDir: dir,
      listen: { hostname: "127.0.0.1", port: 0 },
      http: { hostname: "127.0.0.1", port: 0 },
      log: (line) => lines.push(line),
      tokens: [TOKEN],
    });
    const port = coordinator.rpcAddress.port;
    const clients: RpcClient[] = [];
    try {
      // Through the real client: no token, a wrong one, and a Hello claiming to be a Raft peer
      // (which must not skip the token check). Each call is refused at the handshake.
      const refusedHellos: [string, RpcClient, RegExp][] = [
        ["no token", new RpcClient(coordinator.rpcAddress, { hello: clientHello() }), /no token/],
        [
          "wrong token",
          new RpcClient(coordinator.rpcAddress, { hello: clientHello(WRONG) }),
          /token is not valid/,
        ],
        [
          "role peer",
          new RpcClient(coordinator.rpcAddress, {
            hello: { type: "hello", version: HANDSHAKE_VERSION, role: "peer", id: 2 },
          }),
          /admits workers only/,
        ],
      ];
      for (const [what, client, reason] of refusedHellos) {
        clients.push(client);
        await assert.rejects(
          client.call("mr.ask", { workerId: `evil-${what}` }),
          (err: Error) => err instanceof HandshakeError && reason.test(err.message),
          what,
        );
      }

      // Raw frames: calls with no Hello at all, and calls sent right behind a wrong Hello in the
      // same write. The only thing that may come back is the refusal; no reply, no job token.
      const report = {
        workerId: "evil",
        kind: "map",
        task: 0,
        attempt: 1,
        ok: true,
        bytesRead: 1,
        bytesWritten: 1,
        output: { address: "127.0.0.1:1", sizes: [1], crcs: [0] },
      };
      const calls = [
        [0, 1, "mr.heartbeat", { workerId: "evil", address: "127.0.0.1:1" }],
        [0, 2, "mr.ask", { workerId: "evil" }],
        [0, 3, "mr.report", report],
        [3, "mr.report", report],
      ];
      const forged: unknown[][] = [
        calls,
        [clientHello(WRONG), ...calls],
        [{ type: "hello", version: HANDSHAKE_VERSION, role: "peer", id: 9 }, ...calls],
      ];
      for (const frames of forged) {
        const replies = await rawExchange(port, frames);
        assert.ok(replies.length <= 1, `expected only a refusal, got ${JSON.stringify(replies)}`);
        for (const reply of replies) {
          assert.equal((reply as { type?: string }).type, "refused", JSON.stringify(reply));
        }
        assert.doesNotMatch(JSON.stringify(replies), /token"|"job"/);
      }

      // Nothing changed: no worker known, no task handed out or done, no bytes counted.
      const status = coordinator.status();
      assert.equal(status.workerAuth, true);
      assert.deepEqual(status.workers, []);
      assert.deepEqual(status.counts.map, { idle: 2, running: 0, done: 0 });
      assert.equal(status.tasks.idle.every((t) => t.attempts === 0), true);
      assert.equal(status.bytesRead, 0);

      // Every refused connection is counted, and logged at most once per kind per interval.
      const refused = await metric(
        coordinator.httpAddress,
        /^raftmr_connections_refused_total\{listener="mr-rpc"\} (\d+)$/m,
      );
      assert.ok(refused >= 6, `refused ${refused}`);
      // A burst of wrong tokens: every one counted, the log says it once per 10 s (twice
      // should the burst straddle a window on a loaded machine), never once per connection.
      const before = refused;
      const burst = 8;
      await Promise.all(
        Array.from({ length: burst }, () => rawExchange(port, [clientHello(WRONG)])),
      );
      const after = await metric(
        coordinator.httpAddress,
        /^raftmr_connections_refused_total\{listener="mr-rpc"\} (\d+)$/m,
      );
      assert.equal(after - before, burst);
      const refusalLines = lines.filter((l) => l.includes("Refused mr-rpc connection"));
      for (const kind of [/no token/, /token is not valid/, /admits workers only/, /hello/]) {
        const n = refusalLines.filter((l) => kind.test(l)).length;
        assert.ok(n >= 1 && n <= 2, `${kind}: ${n} lines\n${refusalLines.join("\n")}`);
      }

      // The control: the same port hands a task to a worker with the token.
      const good = new RpcClient(coordinator.rpcAddress, { hello: clientHello(TOKEN) });
      clients.push(good);
      const assignment = await good.call<{ type: string }>("mr.ask", { workerId: "good" });
      assert.equal(assignment.type, "map");
      assert.deepEqual(coordinator.status().workers.map((w) => w.id), ["good"]);
    } finally {
      for (const client of clients) client.close();
      await coordinator.close();
    }
  });
});

Deno.test("raftmr worker without the coordinator's token is refused; with it the job completes", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 3, 300);
    const tokenFile = join(dir, "token");
    const wrongFile = join(dir, "wrong");
    await Deno.writeTextFile(tokenFile, `# worker token\n${TOKEN}\n`);
    await Deno.writeTextFile(wrongFile, `${WRONG}\n`);
    const { proc, rpc, http } = await startCoordinator(dir, files, [
      "--reduce",
      "2",
      "--token-file",
      tokenFile,
    ]);
    try {
      for (
        const [extra, reason] of [
          [[], /Client presented no token/],
          [["--token-file", wrongFile], /Client token is not valid/],
        ] as const
      ) {
        const worker = raftmr(
          ["worker", "--coordinator", rpc, "--app", app("wc"), ...extra],
          dir,
        );
        const out = await worker.done;
        assert.equal(out.code, 1, out.stderr);
        assert.match(out.stderr, reason);
        assert.match(out.stderr, /--token-file/);
      }
      const status: Json = await (await fetch(`http://${http}/status`)).json();
      assert.deepEqual(status.workers, []);
      assert.equal(status.counts.map.done + status.counts.map.running, 0);
      const metrics = await (await fetch(`http://${http}/metrics`)).text();
      const refused = /^raftmr_connections_refused_total\{listener="mr-rpc"\} (\d+)$/m.exec(
        metrics,
      );
      assert.ok(refused && Number(refused[1]) >= 2, metrics);

      const worker = raftmr(
        ["worker", "--coordinator", rpc, "--app", app("wc"), "--token-file", tokenFile],
        dir,
      );
      const w = await worker.done;
      assert.equal(w.code, 0, w.stderr);
      const out = await proc.done;
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
    } finally {
      if (!proc.exited()) proc.child.kill("SIGKILL");
      await proc.done;
    }
  });
});

Deno.test("raftmr coordinator on a network address needs --token-file or --insecure", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "in.txt"), "x\n");
    const out = await raftmr(
      [
        "coordinator",
        "--listen",
        `0.0.0.0:${freePort()}`,
        "--http",
        `127.0.0.1:${freePort()}`,
        "in.txt",
      ],
      dir,
    ).done;
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /reachable from the network: give --token-file/);
    assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
    // A token file that holds no token is a bad command line too.
    await Deno.writeTextFile(join(dir, "empty"), "# nothing\n");
    const empty = await raftmr(["coordinator", "--token-file", "empty", "in.txt"], dir).done;
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /holds no token/);
  });
});

Deno.test("mr run makes a token for its own workers: its coordinator refuses anyone else", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 2, 300);
    // The first file's map waits for the test, so the job is running while the port is probed;
    // the gate sits beside the app, which mr run's workers may read.
    const { app: gated, go } = await gatedWc(dir, files[0]);
    const http = `127.0.0.1:${freePort()}`;
    const run = raftmr(
      ["mr", "run", "--app", gated, "--workers", "2", "--http", http, ...files],
      dir,
    );
    try {
      const status: Json = await waitFor("a worker at mr run's coordinator", async () => {
        const s = await (await fetch(`http://${http}/status`)).json();
        return s.workers.length > 0 ? s : undefined;
      });
      assert.equal(status.workerAuth, true);
      const [hostname, port] = status.rpc.split(":");
      const stranger = new RpcClient({ hostname, port: Number(port) }, { hello: clientHello() });
      await assert.rejects(
        stranger.call("mr.ask", { workerId: "stranger" }),
        (err: Error) => err instanceof HandshakeError && /no token/.test(err.message),
      );
      stranger.close();
      const replies = await rawExchange(Number(port), [[0, 1, "mr.ask", { workerId: "raw" }]]);
      assert.deepEqual(replies.map((r) => (r as { type?: string }).type), ["refused"]);
      const after: Json = await (await fetch(`http://${http}/status`)).json();
      assert.ok(
        after.workers.every((w: { id: string }) => w.id !== "stranger" && w.id !== "raw"),
        JSON.stringify(after.workers),
      );
      await Deno.writeTextFile(go, "");
      const out = await run.done;
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
    } finally {
      await Deno.writeTextFile(go, "").catch(() => {});
      if (!run.exited()) run.child.kill("SIGKILL");
      await run.done;
    }
  });
});
