/**
 * Process metrics every role exports, under the names Prometheus client libraries use for them
 * (`process_resident_memory_bytes`, `process_open_fds`, ...), so stock dashboards and alerts
 * work, plus `raftmr_build_info{version}` (value 1: the usual way to put a version on a graph).
 */
import denoConfig from "../deno.json" with { type: "json" };
import type { Registry, Sample } from "./metrics.ts";

/** The program version, from deno.json. */
export const BUILD_VERSION: string = denoConfig.version;

// performance.timeOrigin is when this process's clock started, close enough to its start.
const START_SECONDS = Math.floor(performance.timeOrigin) / 1000;

/** Registers the process and build metrics on `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  registry.gaugeFunc(
    {
      name: "raftmr_build_info",
      help: "Always 1; labels say what is running",
      labels: ["version", "deno"],
    },
    () => [{ labels: { version: BUILD_VERSION, deno: Deno.version.deno }, value: 1 }],
  );
  registry.gaugeFunc(
    { name: "process_resident_memory_bytes", help: "Resident memory size in bytes" },
    () => Deno.memoryUsage().rss,
  );
  registry.gaugeFunc(
    { name: "process_heap_bytes", help: "V8 heap in use, in bytes" },
    () => Deno.memoryUsage().heapUsed,
  );
  registry.gaugeFunc(
    { name: "process_start_time_seconds", help: "Start time of the process since the epoch" },
    () => START_SECONDS,
  );
  registry.gaugeFunc(
    { name: "process_open_fds", help: "Open file descriptors" },
    () => optional(openFds),
  );
  registry.gaugeFunc(
    { name: "process_max_fds", help: "Limit on open file descriptors" },
    () => optional(maxFds),
  );
}

/**
 * A value read from /proc, or no sample where /proc is missing (not Linux) or not readable (a
 * role run without read permission on it): better absent than a made-up 0.
 */
function optional(read: () => number): Sample[] {
  try {
    const value = read();
    return Number.isFinite(value) ? [{ labels: {}, value }] : [];
  } catch {
    return [];
  }
}

function openFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  // The directory handle used to list it is one of the entries.
  return n - 1;
}

function maxFds(): number {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  return line ? Number(line.split(/\s+/)[3]) : NaN;
}
