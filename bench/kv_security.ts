/**
 * `deno task bench kv --secure --plain-too`: the cost of security, measured within one run. Four
 * clusters run side by side (raftmr plain, raftmr secure, etcd plain, etcd secure; etcd when it
 * is installed) and every workload is driven on each in turn, twice (A B C D A B C D), so the
 * machine's load on a shared host hits all four alike; separate runs minutes apart on such a
 * host differ by more than TLS costs. The load average is printed at the start of every workload
 * and at the end.
 */
import { printTable } from "./table.ts";
import { generateCredentials } from "../cli/credentials.ts";
import {
  type BenchCluster,
  type BenchSecurity,
  EtcdCluster,
  RaftmrCluster,
} from "./kv_clusters.ts";
import { runWrk, type WrkResult } from "./wrk.ts";

/** One workload of the comparison (a subset of bench/kv.ts's). */
export interface SecurityWorkload {
  name: string;
  op: "put" | "get";
  connections: number;
  target: "leader" | "follower";
}

/** What the comparison runs. */
export interface SecurityComparisonOptions {
  root: string;
  workloads: SecurityWorkload[];
  durationMs: number;
  withEtcd: boolean;
}

interface Contender {
  label: string;
  system: BenchCluster;
  /** Where its wrk scripts go (the secure ones carry the token; names would collide). */
  dir: string;
}

function loadAverage(): string {
  try {
    return Deno.loadavg().map((l) => l.toFixed(1)).join(" ");
  } catch {
    return "unknown";
  }
}

/** Starts the clusters, runs every workload on each in turn, prints one table, stops them. */
export async function compareSecurity(options: SecurityComparisonOptions): Promise<void> {
  const { root } = options;
  const paths = await generateCredentials(`${root}/credentials`, { nodes: 3 });
  const security: BenchSecurity = {
    paths,
    ca: await Deno.readTextFile(paths.ca),
    token: (await Deno.readTextFile(paths.token)).trim(),
  };
  const contenders: Contender[] = [];
  const add = async (label: string, start: (dir: string) => Promise<BenchCluster>) => {
    const dir = `${root}/${label.replace(" ", "-")}`;
    await Deno.mkdir(dir, { recursive: true });
    contenders.push({ label, system: await start(`${dir}/data`), dir });
  };
  try {
    await add("raftmr plain", (dir) => RaftmrCluster.start(dir));
    await add("raftmr secure", (dir) => RaftmrCluster.start(dir, security));
    if (options.withEtcd) {
      await add("etcd plain", (dir) => EtcdCluster.start(dir));
      await add("etcd secure", (dir) => EtcdCluster.start(dir, security));
    }
    for (const c of contenders) await c.system.preload(1000);
    const loads: string[] = [];
    const results = new Map<string, WrkResult[]>();
    for (const workload of options.workloads) {
      loads.push(`${workload.name}: ${loadAverage()}`);
      for (let round = 0; round < 2; round++) {
        for (const c of contenders) {
          const url = await c.system.url(workload.target);
          const script = await c.system.wrkScript(workload.op, c.dir);
          const result = await runWrk(url, script, workload.connections, options.durationMs);
          const key = `${c.label}|${workload.name}`;
          results.set(key, [...(results.get(key) ?? []), result]);
        }
      }
    }
    loads.push(`end: ${loadAverage()}`);
    report(contenders.map((c) => c.label), options, results, loads);
  } finally {
    for (const c of contenders) await c.system.stop();
  }
}

function report(
  labels: string[],
  options: SecurityComparisonOptions,
  results: Map<string, WrkResult[]>,
  loads: string[],
): void {
  console.log(
    `KV benchmark, secure and plain side by side, ${new Date().toISOString().slice(0, 16)}Z, ` +
      `${navigator.hardwareConcurrency} cores; ${options.durationMs / 1000} s per run, 2 runs ` +
      `each in turn (${labels.join(", ")}); secure: peers on mutual TLS, HTTPS, raftmr checks ` +
      "a bearer token per request",
  );
  const merged = (label: string, workload: string) => mean(results.get(`${label}|${workload}`));
  const cell = (r: WrkResult) => `${fmt(r.requestsPerSecond)} (p99 ${ms(r.p99Ms)})`;
  const ratio = (a: WrkResult, b: WrkResult) =>
    `${(a.requestsPerSecond / b.requestsPerSecond).toFixed(2)}x`;
  const etcd = labels.includes("etcd plain");
  const header = ["workload", "raftmr plain", "raftmr secure", "secure/plain"];
  if (etcd) header.push("etcd plain", "etcd secure", "secure/plain", "raftmr/etcd secure");
  const rows = options.workloads.map((w) => {
    const rp = merged("raftmr plain", w.name);
    const rs = merged("raftmr secure", w.name);
    const row = [w.name, cell(rp), cell(rs), ratio(rs, rp)];
    if (etcd) {
      const ep = merged("etcd plain", w.name);
      const es = merged("etcd secure", w.name);
      row.push(cell(ep), cell(es), ratio(es, ep), ratio(rs, es));
    }
    return row;
  });
  printTable(header, rows);
  for (const label of labels) {
    const errors = options.workloads.reduce((n, w) => n + merged(label, w.name).errors, 0);
    if (errors > 0) console.log(`${label}: ${errors} requests failed (non-2xx or socket errors)`);
  }
  console.log(`load average (1, 5, 15 min) at the start of each workload: ${loads.join("; ")}`);
}

function mean(runs: WrkResult[] = []): WrkResult {
  const avg = (f: (r: WrkResult) => number) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  return {
    requestsPerSecond: avg((r) => r.requestsPerSecond),
    p50Ms: avg((r) => r.p50Ms),
    p99Ms: avg((r) => r.p99Ms),
    errors: runs.reduce((s, r) => s + r.errors, 0),
  };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function ms(n: number): string {
  return n >= 100 ? `${Math.round(n)} ms` : `${n.toFixed(1)} ms`;
}
