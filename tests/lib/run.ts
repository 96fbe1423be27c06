/** Helpers for tests that run the repository's scripts as processes or need scratch space. */
import { fileURLToPath } from "node:url";

const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/** What a finished process printed, and its exit code. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A <script> ARGS...` to completion (no stdin, no colours). */
export async function runScript(script: string, args: string[]): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Makes a temporary directory, runs `fn` with it, and removes it whatever happens. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
