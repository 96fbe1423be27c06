/**
 * Committing reduce outputs by rename when the workers share the coordinator's filesystem
 * (`mr run`). The coordinator keeps a staging directory inside the output directory; a reduce
 * attempt writes its whole output there under a name of its own and fsyncs it, and the report
 * that the scheduler accepts first has its file renamed into `mr-out-<r>`: one rename within one
 * directory's filesystem, so the output appears whole or not at all (the rule of Hadoop's
 * FileOutputCommitter: task output is written aside and moved into place on commit). This
 * replaces an upload over HTTP, which wrote the same bytes a second time.
 *
 * A worker never assumes it shares a filesystem (MapReduce §3.1): the assignment names the
 * staging directory's identity (device, inode), and a worker writes there only when the
 * directory at that path is that very one and it may write to it; otherwise it uploads.
 */
import { dirname, join, resolve } from "node:path";
import { absolutePathRecord, nonNegativeOf } from "./local_input.ts";
import { outputName } from "./partition.ts";

/** Where one reduce attempt writes its output, and the identity of that file's directory. */
export interface LocalStage {
  /** Absolute path of the file to write (it does not exist yet). */
  path: string;
  dev: number;
  ino: number;
}

/** Validates the `stage` of a reduce assignment (absent stays undefined); throws TypeError. */
export function parseLocalStage(value: unknown): LocalStage | undefined {
  if (value === undefined || value === null) return undefined;
  const v = absolutePathRecord(value, "stage");
  return {
    path: v.path,
    dev: nonNegativeOf(v.dev, "stage", "dev"),
    ino: nonNegativeOf(v.ino, "stage", "ino"),
  };
}

/** Whether this process may write `stage.path` and its directory is the one the coordinator made. */
export async function writableLocally(stage: LocalStage): Promise<boolean> {
  try {
    const status = await Deno.permissions.query({ name: "write", path: stage.path });
    if (status.state !== "granted") return false;
    const dir = await Deno.stat(dirname(stage.path));
    return dir.isDirectory && dir.dev === stage.dev && dir.ino === stage.ino;
  } catch {
    return false;
  }
}

/** The staging directory of job `job` in `outputDir`, as an absolute path. */
export function localStageDir(outputDir: string, job: string): string {
  return join(resolve(outputDir), `.raftmr-${job}`);
}

/**
 * The coordinator's side: the staging directory, and the commit of a staged attempt. Commit and
 * discard are synchronous where the caller needs no other report to interleave.
 */
export class LocalOutputs {
  readonly #outputDir: string;
  readonly #dir: string;
  readonly #dev: number;
  readonly #ino: number;

  private constructor(outputDir: string, dir: string, info: Deno.FileInfo) {
    this.#outputDir = outputDir;
    this.#dir = dir;
    this.#dev = info.dev;
    this.#ino = info.ino ?? 0;
  }

  /**
   * Makes the staging directory `.raftmr-<job>` in `outputDir`; undefined where the platform
   * gives no inode to identify it by (workers then upload).
   */
  static async create(outputDir: string, job: string): Promise<LocalOutputs | undefined> {
    outputDir = resolve(outputDir);
    const dir = localStageDir(outputDir, job);
    await Deno.mkdir(dir, { mode: 0o700 });
    const info = await Deno.stat(dir);
    if (info.ino === null) {
      await Deno.remove(dir);
      return undefined;
    }
    return new LocalOutputs(outputDir, dir, info);
  }

  /** The staging directory (workers need write access to it). */
  get dir(): string {
    return this.#dir;
  }

  /** Where attempt `attempt` of reduce task `reduce` writes its output. */
  stage(reduce: number, attempt: number): LocalStage {
    return { path: this.#path(reduce, attempt), dev: this.#dev, ino: this.#ino };
  }

  #path(reduce: number, attempt: number): string {
    return join(this.#dir, `${outputName(reduce)}.a${attempt}`);
  }

  /** Whether the attempt's output is staged, a regular file of exactly `length` bytes. */
  staged(reduce: number, attempt: number, length: number): boolean {
    try {
      // lstat: a link placed there would be renamed as a link, not as the output.
      const info = Deno.lstatSync(this.#path(reduce, attempt));
      return info.isFile && info.size === length;
    } catch {
      return false;
    }
  }

  /** Renames the attempt's staged output into `mr-out-<reduce>`; the caller fsyncs the directory. */
  commit(reduce: number, attempt: number): void {
    Deno.renameSync(this.#path(reduce, attempt), join(this.#outputDir, outputName(reduce)));
  }

  /** Removes the attempt's staged output, if any (a duplicate or refused attempt). */
  async discard(reduce: number, attempt: number): Promise<void> {
    await Deno.remove(this.#path(reduce, attempt)).catch(() => {});
  }

  /** Removes the staging directory with whatever attempts that died mid-write left in it. */
  async close(): Promise<void> {
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
