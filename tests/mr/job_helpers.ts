/** Shared fixtures of the job table and job service tests. */
import type { JobSpec } from "../../mr/job_commands.ts";

/** A job spec with `nMap` splits of one input and `nReduce` reduce tasks. */
export function jobSpec(nMap: number, nReduce: number, taskTimeoutMs = 10_000): JobSpec {
  return {
    app: "export function map() { return []; }\nexport function reduce() { return ''; }\n",
    appName: "app.ts",
    inputs: ["/data/in.txt"],
    splits: Array.from({ length: nMap }, (_, i) => ({
      file: "/data/in.txt",
      offset: i * 10,
      length: 10,
    })),
    output: "/data/out",
    nReduce,
    taskTimeoutMs,
    token: "0123456789abcdef0123",
  };
}
