/**
 * The benchmark runner's own input handling: bad names and flags get one line and exit 2
 * before anything is started (no wrk or etcd needed).
 */
import assert from "node:assert/strict";
import { runScript } from "../lib/run.ts";

const BENCH = new URL("../../bench/main.ts", import.meta.url).pathname;

const bench = (...args: string[]) => runScript(BENCH, args);

Deno.test("bench: bad names and flags are refused with one line and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["nope"], /^Usage: deno task bench <rpc\|wal\|mr\|kv\|raft> \[args\]$/],
    [["kv", "--bogus"], /^bench kv: Unknown option '--bogus'$/],
    [["kv", "--duration", "abc"], /^bench kv: --duration: expected a duration/],
    [["kv", "--failovers=-1"], /^--failovers must be a whole number ≥ 0, got -1$/],
    [["kv", "--only", "etcd"], /^--only accepts raftmr \(to skip etcd\), got etcd$/],
    [["kv", "--workloads", "DELETE"], /^--workloads DELETE matches none of: PUT c=1 leader, /],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await bench(...args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${stderr}`);
    assert.match(lines[0], message);
  }
});
