/**
 * The HTTP side of issue 12 on a real `raftmr serve`: with --http-cert and --http-key the KV API
 * is served over HTTPS only (a client that trusts the cluster CA gets answers, a plain-HTTP
 * request gets none), the token still guards the KV routes while /healthz stays open; and a node
 * without credentials on an address reachable from the network refuses to start unless
 * --insecure says so.
 */
import assert from "node:assert/strict";
import { parseCommandArgs } from "../../cli/command.ts";
import { parseSecurityFlags } from "../../kv/security_flags.ts";
import { serveCommand } from "../../kv/serve_cli.ts";
import { freePort } from "../lib/cluster.ts";
import { testCredentials } from "../lib/credentials.ts";
import { CONFIG, MAIN, spawn, startSingleNode, waitUntil } from "../lib/roles.ts";

function serve(args: string[]) {
  return spawn(Deno.execPath(), ["run", "-A", "--config", CONFIG, MAIN, "serve", ...args]);
}

Deno.test("https: --http-cert serves the KV API over TLS only; the token still guards it", async () => {
  const creds = await testCredentials();
  const dataDir = await Deno.makeTempDir({ prefix: "raftmr-https-" });
  const { node, httpPort } = startSingleNode(["-A"], dataDir, [
    "--peer-cert",
    creds.paths.nodes[0].cert,
    "--peer-key",
    creds.paths.nodes[0].key,
    "--peer-ca",
    creds.paths.ca,
    "--auth-token-file",
    creds.paths.token,
    "--http-cert",
    creds.paths.nodes[0].cert,
    "--http-key",
    creds.paths.nodes[0].key,
  ]);
  const client = Deno.createHttpClient({ caCerts: [creds.ca] });
  const base = `https://127.0.0.1:${httpPort}`;
  const auth = { authorization: `Bearer ${creds.token}` };
  try {
    // A single node elects itself; a write through HTTPS with the token is acknowledged.
    let put = 0;
    await waitUntil(async () => {
      if (node.done()) return true;
      const res = await fetch(`${base}/v1/kv/greeting`, {
        method: "PUT",
        body: "hello",
        headers: auth,
        client,
      }).catch(() => undefined);
      await res?.body?.cancel();
      put = res?.status ?? 0;
      return put === 200;
    }, () => `no HTTPS write acknowledged (last status ${put})\n${node.stderr()}`);
    assert.equal(node.done(), false, node.stderr());
    const get = await fetch(`${base}/v1/kv/greeting`, { headers: auth, client });
    assert.equal(get.status, 200);
    assert.equal(await get.text(), "hello");
    // Without the token: 401 on the KV API; the health check stays open.
    const anonymous = await fetch(`${base}/v1/kv/greeting`, { client });
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 401);
    const health = await fetch(`${base}/healthz`, { client });
    await health.body?.cancel();
    assert.equal(health.status, 200);
    // Plain HTTP to the HTTPS port gets no HTTP answer, and no value.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: httpPort });
    await conn.write(
      new TextEncoder().encode(
        `GET /v1/kv/greeting HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${creds.token}\r\n\r\n`,
      ),
    );
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer).catch(() => null);
    conn.close();
    const answer = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    assert.doesNotMatch(answer, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(answer, /hello/);
  } finally {
    client.close();
    node.child.kill("SIGTERM");
    await node.exited;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("serve without credentials on a network address refuses to start unless --insecure", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "raftmr-exposed-" });
  try {
    for (
      const [peer, http, pattern] of [
        ["0.0.0.0", "127.0.0.1", /peer address 0\.0\.0\.0 is reachable from the network/],
        ["127.0.0.1", "0.0.0.0", /HTTP address 0\.0\.0\.0 is reachable from the network/],
      ] as const
    ) {
      const node = serve([
        "--id",
        "1",
        "--peers",
        `1=${peer}:${freePort()}`,
        "--http",
        `${http}:${freePort()}`,
        "--data-dir",
        dataDir,
      ]);
      assert.equal(await node.exited, 2, node.stderr());
      assert.match(node.stderr(), pattern);
      assert.equal(node.stderr().trim().split("\n").length, 1, node.stderr());
    }
    // Nothing was created: it refused before opening its data directory.
    assert.deepEqual([...Deno.readDirSync(dataDir)], []);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  // --insecure is the operator saying it is meant (checked without binding a network address).
  const args = parseCommandArgs(serveCommand, [
    "--id",
    "1",
    "--peers",
    "1=0.0.0.0:7001",
    "--http",
    "0.0.0.0:8001",
    "--insecure",
  ]);
  const settings = parseSecurityFlags(args, {
    peer: { hostname: "0.0.0.0", port: 7001 },
    http: { hostname: "0.0.0.0", port: 8001 },
  });
  assert.equal(settings.files.peerCert, undefined);
  assert.equal(settings.files.authTokenFile, undefined);
});
