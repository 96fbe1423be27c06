/**
 * A peer started exactly as deploy/raftmr@.service starts it (its ExecStart, permissions
 * included, with test paths): it tells a datagram socket given as NOTIFY_SOCKET "READY=1" once
 * it serves, logs with journald priority prefixes, serves writes, and on SIGTERM says
 * "STOPPING=1" and exits 0.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { testCredentials } from "../lib/credentials.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, MAIN, spawn, startSingleNode, unitExecStart, waitUntil } from "../lib/roles.ts";

Deno.test("systemd: a peer started as the unit starts it notifies READY=1 and STOPPING=1", async () => {
  await withTempDir("raftmr-systemd-", async (dir) => {
    const socketPath = `${dir}/notify.sock`;
    const socket = Deno.listenDatagram({ transport: "unixpacket", path: socketPath });
    const messages: string[] = [];
    const receiving = (async () => {
      try {
        for await (const [data] of socket) messages.push(new TextDecoder().decode(data));
      } catch {
        // Closed at the end of the test.
      }
    })();
    const peerPort = freePort();
    const httpPort = freePort();
    const creds = await testCredentials();
    const argv = unitExecStart("raftmr@.service", {
      "/etc/raftmr/tls": creds.paths.dir,
      "/opt/raftmr/deno": Deno.execPath(),
      "/opt/raftmr/raftmr.js": MAIN,
      "/var/lib/raftmr/%i": dir,
      "/run/systemd/notify": socketPath,
      "%i": "1",
      "${RAFTMR_PEERS}": `1=127.0.0.1:${peerPort}`,
      "${RAFTMR_HTTP}": `127.0.0.1:${httpPort}`,
    });
    assert.ok(
      !argv.includes("-A") && !argv.some((a) => a.startsWith("--allow-all")),
      argv.join(" "),
    );
    // deno.json is named explicitly because main.ts (unlike the bundle) imports through it.
    const node = spawn(argv[0], [argv[1], "--config", CONFIG, ...argv.slice(2)], {
      env: { NOTIFY_SOCKET: socketPath, JOURNAL_STREAM: "8:12345" },
    });
    try {
      await waitUntil(
        () => messages.includes("READY=1") || node.done(),
        () => `No READY=1; messages ${JSON.stringify(messages)}; stderr:\n${node.stderr()}`,
      );
      assert.ok(!node.done(), `The node exited:\n${node.stderr()}`);
      // Ready means serving: a write through the HTTP API succeeds now.
      await waitUntil(async () => {
        const response = await fetch(`http://127.0.0.1:${httpPort}/v1/kv/k`, {
          method: "PUT",
          body: "v",
          headers: { authorization: `Bearer ${creds.token}` },
        }).catch(() => undefined);
        await response?.body?.cancel();
        return response?.status === 200;
      }, () => `The write never succeeded; stderr:\n${node.stderr()}`);
      node.child.kill("SIGTERM");
      assert.equal(await node.exited, 0, node.stderr());
      await waitUntil(
        () => messages.includes("STOPPING=1"),
        () => `No STOPPING=1; messages ${JSON.stringify(messages)}`,
      );
      assert.deepEqual(messages, ["READY=1", "STOPPING=1"]);
      // Under journald (JOURNAL_STREAM set) every line has a priority and no timestamp.
      const lines = node.stderr().trim().split("\n");
      for (const line of lines) assert.match(line, /^<[3-7]>node 1: /, line);
      assert.ok(lines.some((line) => /^<6>node 1: Stopped$/.test(line)), node.stderr());
    } finally {
      try {
        node.child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await node.exited;
      socket.close();
      await receiving;
    }
  });
});

Deno.test("systemd: a peer without a permission it needs says which flag, in one line", async () => {
  await withTempDir("raftmr-perm-", async (dir) => {
    const { node } = startSingleNode(["--no-prompt", "--allow-net"], `${dir}/data`, []);
    assert.equal(await node.exited, 2, node.stderr());
    const lines = node.stderr().trim().split("\n");
    assert.equal(lines.length, 1, node.stderr());
    assert.match(lines[0], /^raftmr: serve: missing a Deno permission: .*--allow-(read|write)/);
  });
});

/** Whether `systemd-analyze` (Debian package systemd) is installed here. */
function hasSystemdAnalyze(): boolean {
  try {
    return new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "systemd: systemd-analyze security rates both units 2.0 or better",
  ignore: !hasSystemdAnalyze(),
  fn: async () => {
    for (const unit of ["raftmr@.service", "raftmr-worker@.service"]) {
      const path = new URL(`../../deploy/${unit}`, import.meta.url).pathname;
      const out = await new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=yes", "--no-pager", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const match = /Overall exposure level for \S+: (\d+\.\d+) (\w+)/.exec(text);
      assert.ok(match, `${unit}: ${text.slice(-500)}${new TextDecoder().decode(out.stderr)}`);
      assert.ok(Number(match[1]) <= 2.0, `${unit} scored ${match[1]} ${match[2]}`);
      // V8 writes the machine code it compiles: the unit must not forbid that.
      assert.doesNotMatch(await Deno.readTextFile(path), /^MemoryDenyWriteExecute=yes/m);
    }
  },
});

Deno.test({
  name: "systemd: systemd-analyze verify finds nothing to say about either unit",
  ignore: !hasSystemdAnalyze(),
  fn: async () => {
    await withTempDir("raftmr-verify-", async (dir) => {
      for (const unit of ["raftmr@.service", "raftmr-worker@.service"]) {
        const text = await Deno.readTextFile(new URL(`../../deploy/${unit}`, import.meta.url));
        // verify checks that ExecStart's program exists: point it at this machine's Deno.
        const path = `${dir}/${unit}`;
        await Deno.writeTextFile(path, text.replaceAll("/opt/raftmr/deno", Deno.execPath()));
        const out = await new Deno.Command("systemd-analyze", {
          args: ["verify", path],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
        assert.ok(out.success, `${unit}: ${said}`);
        // Unknown keys and bad values are warnings with exit status 0: none may appear.
        assert.equal(said.trim(), "", `${unit}: ${said}`);
      }
    });
  },
});
