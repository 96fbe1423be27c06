/**
 * Every benchmark's flags, for `deno task bench NAME --help` and for checking a command line
 * before a benchmark starts: an unknown flag or a missing value exits 2 at once, instead of
 * being ignored by a benchmark that then runs for seconds or minutes.
 */

/** One flag of a benchmark. */
export interface BenchFlag {
  type: "string" | "boolean";
  /** Placeholder for the value in help text. */
  value?: string;
  description: string;
}

/** A benchmark: what it measures and its flags. */
export interface BenchSpec {
  summary: string;
  flags: Record<string, BenchFlag>;
}

/** The benchmarks `deno task bench` runs, by name. */
export const BENCHMARKS: Record<string, BenchSpec> = {
  rpc: {
    summary: "RPC round trips/s over loopback (1 and 64 callers) and MB/s of 1 MiB payloads, " +
      "against a raw TCP ping-pong (BENCH_MS sets the time per row, default 3000)",
    flags: {},
  },
  wal: {
    summary: "Appends/s of 100-byte entries through DiskStorage.save against a raw " +
      "write + fdatasync loop on the same disk",
    flags: {
      dir: { type: "string", value: "DIR", description: "Parent of the data (default: here)" },
      ms: { type: "string", value: "N", description: "Milliseconds per row (default 3000)" },
    },
  },
  raft: {
    summary: "Raft core commits/s with 3 nodes in one process over an in-memory transport",
    flags: {
      seconds: { type: "string", value: "N", description: "Seconds per row (default 2)" },
      disk: { type: "boolean", description: "fdatasync each save to a temp file" },
    },
  },
  mr: {
    summary: "MapReduce word count: raftmr mr run against one Deno process and sort | uniq -c",
    flags: {
      mb: { type: "string", value: "MIB", description: "Corpus size (default 64)" },
      runs: {
        type: "string",
        value: "N",
        description: "Runs per contender, best kept (default 3)",
      },
      scale: {
        type: "string",
        value: "MIB,...",
        description: "Sizes for the scale section (default 64,256,1024)",
      },
      only: {
        type: "string",
        value: "SECTIONS",
        description: "Sections to run: compare,workers,scale (default all)",
      },
      keep: { type: "boolean", description: "Keep the generated corpus" },
    },
  },
  kv: {
    summary: "raftmr against etcd (when installed) over HTTP with wrk: PUT/GET at the leader " +
      "and a follower, failover time, rolling restarts, leader changes under load",
    flags: {
      duration: { type: "string", value: "DURATION", description: "Per run (default 5s)" },
      steady: {
        type: "string",
        value: "DURATION",
        description: "Steady load for counting leader changes (default 60s)",
      },
      failovers: { type: "string", value: "N", description: "Leader kills to time (default 5)" },
      rolling: {
        type: "string",
        value: "N",
        description: "Rolling restarts (SIGTERM each node in turn) under PUT c=64 (default 1)",
      },
      only: { type: "string", value: "raftmr", description: "Skip etcd" },
      workloads: {
        type: "string",
        value: "TEXT",
        description: 'Only workloads whose name contains TEXT, e.g. "PUT c=64"',
      },
      secure: {
        type: "boolean",
        description: "Both with peer TLS (client certificates) and HTTPS; raftmr with tokens too",
      },
      "plain-too": {
        type: "boolean",
        description: "With --secure: plain clusters beside the secure ones, measured in turn",
      },
    },
  },
};

/** The --help text of one benchmark. */
export function benchHelp(name: string): string {
  const spec = BENCHMARKS[name];
  const rows = Object.entries(spec.flags).map(([flag, f]) => [
    `  --${flag}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`,
    f.description,
  ]);
  rows.push(["  --help", "Show this help"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    `Usage: deno task bench ${name} [flags]`,
    "",
    spec.summary,
    "",
    "Flags:",
    ...rows.map(([left, right]) => left.padEnd(width) + right),
    "",
    "Figures only: a benchmark never passes or fails.",
  ].join("\n");
}
