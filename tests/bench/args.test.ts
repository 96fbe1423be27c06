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
    [["kv", "--rolling=x"], /^--rolling must be a whole number ≥ 0, got x$/],
    [["kv", "--only", "etcd"], /^--only accepts raftmr \(to skip etcd\), got etcd$/],
    [["kv", "--workloads", "DELETE"], /^--workloads DELETE matches none of: PUT c=1 leader, /],
    [["mr", "--runs", "0"], /^bench mr: --runs must be a whole number ≥ 1, got 0$/],
    [
      ["mr", "--only", "nope"],
      /^bench mr: --only accepts compare, workers, scale, splits, shuffle, got nope$/,
    ],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await bench(...args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${stderr}`);
    assert.match(lines[0], message);
  }
});

Deno.test("bench: every benchmark explains its flags on --help and refuses an unknown one", async () => {
  for (const name of ["rpc", "wal", "mr", "kv", "raft"]) {
    const help = await bench(name, "--help");
    assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`^Usage: deno task bench ${name} \\[flags\\]`), name);
    assert.match(help.stdout, /--help +Show this help/, name);
    const unknown = await bench(name, "--no-such-flag");
    assert.equal(unknown.code, 2, `${name} --no-such-flag: ${unknown.stderr}`);
    assert.equal(unknown.stderr.trim().split("\n").length, 1, unknown.stderr);
    assert.match(unknown.stderr, new RegExp(`^bench ${name}: Unknown option '--no-such-flag'`));
    assert.equal(unknown.stdout, "", `${name} printed figures for a bad command line`);
  }
  // A flag that needs a value, given none, is refused the same way (raft parses by hand).
  const missing = await bench("raft", "--seconds");
  assert.equal(missing.code, 2, missing.stderr);
});
