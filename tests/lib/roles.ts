/**
 * Starting raftmr's roles the way users and operators do, for the operations tests: with the
 * permission flags of a deno.json task or of a systemd unit's ExecStart, never with -A.
 */
import { fileURLToPath } from "node:url";
import { freePort } from "./cluster.ts";

/** Absolute path of main.ts. */
export const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
/** Absolute path of deno.json. */
export const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));
/** Absolute path of the repository. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The Deno flags of a `deno run ... main.ts` task in deno.json (between "run" and "main.ts"). */
export function taskFlags(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(CONFIG));
  const entry = config.tasks[task];
  const command: string = typeof entry === "string" ? entry : entry.command;
  const words = command.split(/\s+/);
  const start = words.indexOf("run") + 1;
  const end = words.indexOf("main.ts");
  if (start === 0 || end < start) throw new Error(`Task ${task} is not "deno run ... main.ts"`);
  return words.slice(start, end);
}

/**
 * A unit's ExecStart as argv, continuation lines joined, with `replace` applied to every word
 * (longest keys first, so a path is replaced before its prefix).
 */
export function unitExecStart(unitFile: string, replace: Record<string, string>): string[] {
  const text = Deno.readTextFileSync(new URL(`../../deploy/${unitFile}`, import.meta.url));
  const joined = text.replace(/\\\n\s*/g, " ");
  const line = joined.split("\n").find((l) => l.startsWith("ExecStart="));
  if (!line) throw new Error(`${unitFile} has no ExecStart`);
  const keys = Object.keys(replace).sort((a, b) => b.length - a.length);
  return line.slice("ExecStart=".length).trim().split(/\s+/).map((word) => {
    for (const key of keys) word = word.split(key).join(replace[key]);
    return word;
  });
}

/**
 * `raftmr serve` as a one-node cluster on free ports, run with `permissions` (Deno flags) and
 * `extra` serve flags; returns the process and its HTTP port.
 */
export function startSingleNode(
  permissions: string[],
  dataDir: string,
  extra: string[] = [],
): { node: Running; httpPort: number } {
  const httpPort = freePort();
  const node = spawn(Deno.execPath(), [
    "run",
    "--config",
    CONFIG,
    ...permissions,
    MAIN,
    "serve",
    "--id",
    "1",
    "--peers",
    `1=127.0.0.1:${freePort()}`,
    "--http",
    `127.0.0.1:${httpPort}`,
    "--data-dir",
    dataDir,
    ...extra,
  ]);
  return { node, httpPort };
}

/** A spawned process whose output is collected as it arrives. */
export interface Running {
  child: Deno.ChildProcess;
  /** Everything written so far on stdout / stderr. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has exited and its output is read. */
  exited: Promise<number>;
  /** Whether `exited` has resolved. */
  done(): boolean;
}

/** Spawns a program and collects its output. */
export function spawn(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Running {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const err: string[] = [];
  const drained = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  let done = false;
  return {
    child,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    exited: Promise.all([child.status, drained]).then(([status]) => {
      done = true;
      return status.code;
    }),
    done: () => done,
  };
}

/** Polls `check` every 50 ms until it returns true; throws `describe()` after `attempts`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  describe: () => string,
  attempts = 1200,
): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(describe());
}

async function collect(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) into.push(decoder.decode(chunk, { stream: true }));
  } catch {
    // The process died mid-write: what was read is kept.
  }
}
