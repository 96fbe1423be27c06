/**
 * The coordinator's INPUT arguments: a file, a directory (its regular files whose names do not
 * start with "." or "_", not recursive, the Hadoop FileInputFormat convention for hidden and
 * bookkeeping files) or a glob; and the check that every input is a readable regular file.
 */
import { basename, dirname, join } from "node:path";

/** A missing, unreadable or non-regular input: the coordinator refuses to start. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

const GLOB_CHARS = /[*?[]/;

function globRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else if (ch === "[") {
      const close = pattern.indexOf("]", i + 1);
      if (close < 0) source += "\\[";
      else {
        const body = pattern.slice(i + 1, close).replace(/^!/, "^").replace(/\\/g, "\\\\");
        source += `[${body}]`;
        i = close;
      }
    } else source += ch.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Expands INPUT arguments into the file names map tasks are named after, in order: a
 * directory's files sorted by name, a glob's matches sorted by name, a file as given. Throws
 * InputError for a directory with no input file or a glob that matches nothing; a name that does
 * not exist is kept, for checkInputs to report with the rest.
 */
export async function expandInputs(inputs: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    let info: Deno.FileInfo | undefined;
    try {
      info = await statOrUndefined(input);
    } catch {
      files.push(input); // Unreadable: checkInputs says why.
      continue;
    }
    if (info?.isDirectory) {
      const names: string[] = [];
      for await (const entry of Deno.readDir(input)) {
        if (entry.name.startsWith(".") || entry.name.startsWith("_")) continue;
        const path = join(input, entry.name);
        if ((await statOrUndefined(path))?.isFile) names.push(path);
      }
      if (names.length === 0) {
        throw new InputError(`No input files in directory ${input}: it holds no regular file`);
      }
      files.push(...names.sort());
    } else if (info === undefined && GLOB_CHARS.test(basename(input))) {
      const dir = dirname(input);
      const pattern = globRegExp(basename(input));
      const names: string[] = [];
      try {
        for await (const entry of Deno.readDir(dir)) {
          if (entry.name.startsWith(".") || !pattern.test(entry.name)) continue;
          const path = dir === "." && !input.startsWith("./") ? entry.name : join(dir, entry.name);
          if ((await statOrUndefined(path))?.isFile) names.push(path);
        }
      } catch {
        // An unreadable directory matches nothing.
      }
      if (names.length === 0) throw new InputError(`No input files match ${input}`);
      files.push(...names.sort());
    } else {
      files.push(input);
    }
  }
  return files;
}

/**
 * Checks that every input file exists, is a regular file (a FIFO or a device is refused before
 * it is opened: opening a FIFO blocks until a writer comes) and can be opened for reading;
 * throws InputError naming each bad file.
 */
export async function checkInputs(files: string[]): Promise<void> {
  if (files.length === 0) throw new InputError("No input files: give at least one FILE");
  const problems: string[] = [];
  for (const file of files) {
    try {
      const info = await Deno.stat(file);
      if (!info.isFile) {
        problems.push(`${file}: not a regular file`);
        continue;
      }
      (await Deno.open(file, { read: true })).close();
    } catch (err) {
      const reason = err instanceof Deno.errors.NotFound
        ? "no such file"
        : err instanceof Deno.errors.PermissionDenied
        ? "permission denied"
        : err instanceof Error
        ? err.message
        : String(err);
      problems.push(`${file}: ${reason}`);
    }
  }
  if (problems.length > 0) {
    throw new InputError(
      `Cannot read input file${problems.length > 1 ? "s" : ""}: ${problems.join("; ")}`,
    );
  }
}
