/**
 * `deno task bench kv [--duration 5s] [--steady 60s] [--failovers 5] [--rolling 1] [--secure
 * [--plain-too]] [--workloads TEXT]`: raftmr against etcd on the same machine in the same run. Both get a 3-node
 * cluster on loopback with fsync on, data on the normal disk; wrk drives both over HTTP (raftmr
 * through PUT/GET /v1/kv/{key}, etcd through its v3 JSON gateway) with 100-byte values over 1000
 * keys, at the leader and at a follower. Runs alternate A B A B so drift on a shared machine hits
 * both. Then failovers (kill -9 of the leader) and rolling restarts (each node in turn stopped
 * with SIGTERM and started again under PUT c=64). Without etcd, raftmr runs alone.
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../cli/command.ts";
import { printTable } from "./table.ts";
import { generateCredentials } from "../cli/credentials.ts";
import {
  type BenchCluster,
  type BenchSecurity,
  EtcdCluster,
  RaftmrCluster,
  type RollingRestartResult,
} from "./kv_clusters.ts";
import { runWrk, type WrkResult } from "./wrk.ts";
import { compareSecurity } from "./kv_security.ts";

interface Workload {
  name: string;
  op: "put" | "get";
  connections: number;
  target: "leader" | "follower";
}

const WORKLOADS: Workload[] = [
  { name: "PUT c=1 leader", op: "put", connections: 1, target: "leader" },
  { name: "PUT c=64 leader", op: "put", connections: 64, target: "leader" },
  { name: "PUT c=1 follower", op: "put", connections: 1, target: "follower" },
  { name: "PUT c=64 follower", op: "put", connections: 64, target: "follower" },
  { name: "GET c=1 leader", op: "get", connections: 1, target: "leader" },
  { name: "GET c=64 leader", op: "get", connections: 64, target: "leader" },
  { name: "GET c=1 follower", op: "get", connections: 1, target: "follower" },
  { name: "GET c=64 follower", op: "get", connections: 64, target: "follower" },
];

/** Runs the KV benchmark and prints one table with both systems' figures and ratios. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string", default: "5s" },
      steady: { type: "string", default: "60s" },
      failovers: { type: "string", default: "5" },
      rolling: { type: "string", default: "1" },
      only: { type: "string" },
      // Runs only the workloads whose name contains this text, e.g. "PUT c=64".
      workloads: { type: "string", default: "" },
      secure: { type: "boolean", default: false },
      // With --secure: plain clusters beside the secure ones, in turn (bench/kv_security.ts).
      "plain-too": { type: "boolean", default: false },
    },
  });
  const workloads = WORKLOADS.filter((w) => w.name.includes(values.workloads!));
  if (workloads.length === 0) {
    console.error(
      `--workloads ${values.workloads} matches none of: ${WORKLOADS.map((w) => w.name).join(", ")}`,
    );
    Deno.exit(2);
  }
  const durationMs = parseDuration(values.duration!, "--duration");
  const steadyMs = parseDuration(values.steady!, "--steady");
  const failovers = Number(values.failovers);
  if (!Number.isSafeInteger(failovers) || failovers < 0) {
    console.error(`--failovers must be a whole number ≥ 0, got ${values.failovers}`);
    Deno.exit(2);
  }
  const rollingRounds = Number(values.rolling);
  if (!Number.isSafeInteger(rollingRounds) || rollingRounds < 0) {
    console.error(`--rolling must be a whole number ≥ 0, got ${values.rolling}`);
    Deno.exit(2);
  }
  if (values.only !== undefined && values.only !== "raftmr") {
    console.error(`--only accepts raftmr (to skip etcd), got ${values.only}`);
    Deno.exit(2);
  }
  if (!(await commandExists("wrk"))) {
    console.error("wrk is not installed: apt-get update && apt-get install -y wrk");
    Deno.exit(1);
  }
  const etcdInstalled = await commandExists("etcd");
  const withEtcd = etcdInstalled && values.only !== "raftmr";
  if (!etcdInstalled) {
    console.error(
      "etcd is not installed (apt-get update && apt-get install -y etcd-server): " +
        "measuring raftmr alone",
    );
  }
  const root = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".bench-kv-" });
  if (values["plain-too"]) {
    if (!values.secure) {
      console.error("--plain-too goes with --secure");
      Deno.exit(2);
    }
    try {
      await compareSecurity({ root, workloads, durationMs, withEtcd });
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
    return;
  }
  // --secure: one CA for both; every node certificate is also its HTTPS certificate.
  let security: BenchSecurity | undefined;
  if (values.secure) {
    const paths = await generateCredentials(`${root}/credentials`, { nodes: 3 });
    security = {
      paths,
      ca: await Deno.readTextFile(paths.ca),
      token: (await Deno.readTextFile(paths.token)).trim(),
    };
  }
  const systems: BenchCluster[] = [await RaftmrCluster.start(`${root}/raftmr`, security)];
  if (withEtcd) systems.push(await EtcdCluster.start(`${root}/etcd`, security));
  try {
    for (const system of systems) await system.preload(1000);
    const results = new Map<string, WrkResult[]>();
    for (const workload of workloads) {
      // A B A B: both systems see the same machine conditions.
      for (let round = 0; round < 2; round++) {
        for (const system of systems) {
          const url = await system.url(workload.target);
          const script = await system.wrkScript(workload.op, root);
          const result = await runWrk(url, script, workload.connections, durationMs);
          const key = `${system.name}|${workload.name}`;
          results.set(key, [...(results.get(key) ?? []), result]);
        }
      }
    }
    const failoverFigures = new Map<string, number[]>();
    for (let run = 0; run < failovers; run++) {
      for (const system of systems) {
        const ms = await system.failover();
        failoverFigures.set(system.name, [...(failoverFigures.get(system.name) ?? []), ms]);
      }
    }
    // Rolling restarts, A B A B: each node in turn stopped with SIGTERM and started again.
    const rolling = new Map<string, RollingRestartResult[]>();
    for (let run = 0; run < rollingRounds; run++) {
      for (const system of systems) {
        const r = await system.rollingRestart(64);
        rolling.set(system.name, [...(rolling.get(system.name) ?? []), r]);
      }
    }
    const steady = new Map<string, number>();
    if (steadyMs > 0) {
      for (const system of systems) {
        const before = await system.leaderChanges();
        const script = await system.wrkScript("put", root);
        await runWrk(await system.url("leader"), script, 64, steadyMs);
        steady.set(system.name, (await system.leaderChanges()) - before);
      }
    }
    report(
      systems.map((s) => s.name),
      workloads,
      results,
      failoverFigures,
      rolling,
      steady,
      durationMs,
      steadyMs,
      values.secure === true,
    );
  } finally {
    for (const system of systems) await system.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

function report(
  names: string[],
  workloads: Workload[],
  results: Map<string, WrkResult[]>,
  failovers: Map<string, number[]>,
  rolling: Map<string, RollingRestartResult[]>,
  steady: Map<string, number>,
  durationMs: number,
  steadyMs: number,
  secure: boolean,
): void {
  const [ours, theirs] = names;
  console.log(
    `KV benchmark, ${
      new Date().toISOString().slice(0, 10)
    }, ${Deno.build.os} ${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} cores; ${
        durationMs / 1000
      } s per run, 2 runs each (A B A B), ` +
      "100-byte values over 1000 keys, wrk over " +
      (secure ? "HTTPS; peers on mutual TLS, raftmr checks a bearer token per request" : "HTTP"),
  );
  const header = ["workload", ...names.flatMap((n) => [`${n} req/s`, `${n} p50`, `${n} p99`])];
  if (theirs) header.push("throughput ratio", "p99 ratio");
  const rows: string[][] = [];
  for (const workload of workloads) {
    const row = [workload.name];
    const merged = names.map((n) => mergeRuns(results.get(`${n}|${workload.name}`) ?? []));
    for (const m of merged) row.push(fmt(m.requestsPerSecond), ms(m.p50Ms), ms(m.p99Ms));
    if (theirs) {
      row.push(
        `${(merged[0].requestsPerSecond / merged[1].requestsPerSecond).toFixed(2)}x`,
        `${(merged[0].p99Ms / merged[1].p99Ms).toFixed(2)}x`,
      );
    }
    rows.push(row);
  }
  printTable(header, rows);
  for (const name of names) {
    const errors = workloads.map((w) => mergeRuns(results.get(`${name}|${w.name}`) ?? []).errors)
      .reduce((a, b) => a + b, 0);
    if (errors > 0) console.log(`${name}: ${errors} requests failed (non-2xx or socket errors)`);
  }
  const failHeader = ["failover (kill -9 leader → write succeeds)", ...names];
  const stats = names.map((n) => failovers.get(n) ?? []);
  const failRows = stats[0].length === 0 ? [] : [
    ["median", ...stats.map((s) => ms(median(s)))],
    ["max", ...stats.map((s) => ms(Math.max(...s)))],
    ["runs", ...stats.map((s) => s.map((v) => Math.round(v)).join(", "))],
  ];
  if (steadyMs > 0) {
    failRows.push([
      `leader changes during ${steadyMs / 1000} s of PUT c=64`,
      ...names.map((n) => String(steady.get(n) ?? "-")),
    ]);
  }
  if (failRows.length > 0) {
    console.log("");
    printTable(failHeader, failRows);
  }
  const rolls = names.map((n) => rolling.get(n) ?? []);
  if (rolls[0].length > 0) {
    const worst = (rs: RollingRestartResult[]) => Math.max(...rs.map((r) => r.longestGapMs));
    const sum = (rs: RollingRestartResult[], k: "ok" | "failed") =>
      rs.reduce((a, r) => a + r[k], 0);
    const header = ["rolling restart (SIGTERM each node, PUT c=64)", ...names];
    if (theirs) header.push("ratio");
    const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : "-");
    const gapRow = [
      "longest stretch without a successful write",
      ...rolls.map((r) => ms(worst(r))),
    ];
    const failRow = ["failed requests", ...rolls.map((r) => fmt(sum(r, "failed")))];
    const okRow = ["successful writes", ...rolls.map((r) => fmt(sum(r, "ok")))];
    if (theirs) {
      gapRow.push(ratio(worst(rolls[0]), worst(rolls[1])));
      failRow.push(ratio(sum(rolls[0], "failed"), sum(rolls[1], "failed")));
      okRow.push(ratio(sum(rolls[0], "ok"), sum(rolls[1], "ok")));
    }
    console.log("");
    printTable(header, [gapRow, failRow, okRow, ["rounds", ...rolls.map((r) => String(r.length))]]);
  }
  if (ours && theirs) console.log(`\nratios are ${ours} / ${theirs}`);
}

function mergeRuns(runs: WrkResult[]): WrkResult {
  const mean = (f: (r: WrkResult) => number) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  return {
    requestsPerSecond: mean((r) => r.requestsPerSecond),
    p50Ms: mean((r) => r.p50Ms),
    p99Ms: mean((r) => r.p99Ms),
    errors: runs.reduce((s, r) => s + r.errors, 0),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function ms(n: number): string {
  return n >= 100 ? `${Math.round(n)} ms` : `${n.toFixed(2)} ms`;
}

async function commandExists(name: string): Promise<boolean> {
  const result = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`] }).output();
  return result.success;
}
