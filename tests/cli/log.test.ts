/**
 * The process logger: JSON lines carry ts, level, msg and the event's fields; levels filter;
 * under journald text lines carry a priority and no timestamp. And a live peer started with
 * `--log-format json` (its narrow permissions) writes only lines that parse, with its node id,
 * term and leader.
 */
import assert from "node:assert/strict";
import { createLogger } from "../../cli/log.ts";
import { servePermissions } from "../../cli/permissions.ts";
import { withTempDir } from "../lib/run.ts";
import { startSingleNode, waitUntil } from "../lib/roles.ts";

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

Deno.test("log: JSON lines carry ts, level, msg, bound and event fields", () => {
  const lines: string[] = [];
  const log = createLogger({
    format: "json",
    level: "info",
    write: (line) => lines.push(line),
    now: () => NOW,
  }).with({ node: 3 });
  log("Term 4: leader is node 2", { term: 4, leader: 2 });
  log.warn("Peer 1 lost", { peer: 1, error: new Error("reset") });
  log.debug("not shown at info");
  assert.deepEqual(lines.map((line) => JSON.parse(line)), [
    {
      ts: "2026-12-01T12:00:00.000Z",
      level: "info",
      msg: "Term 4: leader is node 2",
      node: 3,
      term: 4,
      leader: 2,
    },
    {
      ts: "2026-12-01T12:00:00.000Z",
      level: "warn",
      msg: "Peer 1 lost",
      node: 3,
      peer: 1,
      error: "reset",
    },
  ]);
});

Deno.test("log: text lines, levels, the reserved level field and journald priorities", () => {
  const lines: string[] = [];
  const options = {
    level: "warn" as const,
    write: (line: string) => lines.push(line),
    now: () => NOW,
  };
  const text = createLogger({ ...options, format: "text", journald: false, name: "node 1" });
  text("info is below warn");
  text("Send failed: reset", { level: "warn" });
  text.error("Fatal: disk full");
  const journal = createLogger({ ...options, format: "text", journald: true, name: "node 1" });
  journal.warn("Peer 2 lost");
  journal.error("Fatal: disk full");
  assert.deepEqual(lines, [
    "2026-12-01T12:00:00.000Z WARN node 1: Send failed: reset",
    "2026-12-01T12:00:00.000Z ERROR node 1: Fatal: disk full",
    "<4>node 1: Peer 2 lost",
    "<3>node 1: Fatal: disk full",
  ]);
});

Deno.test("log: a live peer with --log-format json writes parseable lines with its fields", async () => {
  await withTempDir("raftmr-jsonlog-", async (dir) => {
    const data = `${dir}/data`;
    const { node } = startSingleNode(servePermissions(data), data, [
      "--log-format",
      "json",
      "--log-level",
      "debug",
    ]);
    try {
      await waitUntil(
        () => /leader is node 1/.test(node.stderr()) || node.done(),
        () => `No leader line:\n${node.stderr()}`,
      );
      node.child.kill("SIGTERM");
      assert.equal(await node.exited, 0, node.stderr());
    } finally {
      if (!node.done()) node.child.kill("SIGKILL");
      await node.exited;
    }
    const records = node.stderr().trim().split("\n").map((line) => JSON.parse(line));
    for (const record of records) {
      assert.equal(typeof record.ts, "string");
      assert.ok(!Number.isNaN(Date.parse(record.ts)), record.ts);
      assert.ok(["debug", "info", "warn", "error"].includes(record.level), record.level);
      assert.equal(typeof record.msg, "string");
      assert.equal(record.node, 1, JSON.stringify(record));
    }
    const leader = records.find((r) => /leader is node 1/.test(r.msg));
    assert.equal(leader?.leader, 1);
    assert.ok(leader.term >= 1, JSON.stringify(leader));
    assert.ok(records.some((r) => r.msg === "Stopped"));
    assert.ok(records.some((r) => r.signal === "SIGTERM"), "the shutdown line names the signal");
  });
});
