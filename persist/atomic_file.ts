/**
 * Crash-safe whole-file writes: a reader (or a process restarted after a crash or power loss)
 * sees either the old contents or the new ones, never a mix or a truncated file.
 */
import { basename, dirname, join } from "node:path";

let tmpCounter = 0;

/**
 * Fsyncs a directory so that entries created, renamed or removed in it survive power loss.
 * Durable on resolve: the directory entries as they were when called.
 */
export async function fsyncDir(dir: string): Promise<void> {
  // On Linux a directory opened read-only can be fsynced; that is what makes a rename or an
  // unlink durable (ext4/xfs otherwise may forget it after power loss even if the file data
  // was synced). Platforms that refuse to open or sync directories (Windows) have no
  // equivalent operation, so there is nothing more we could do: ignore only those errors.
  let file: Deno.FsFile;
  try {
    file = await Deno.open(dir, { read: true });
  } catch (err) {
    if (Deno.build.os === "windows") return;
    throw err;
  }
  try {
    await file.sync();
  } catch (err) {
    if (Deno.build.os !== "windows") throw err;
  } finally {
    file.close();
  }
}

/**
 * Writes `data` (a string, bytes, or byte parts written back to back) to `path` atomically:
 * temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
 * Durable on resolve; a crash before that leaves the old file (plus possibly a stray `.tmp`
 * file, which callers may delete on start).
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | Uint8Array[],
): Promise<void> {
  const parts = typeof data === "string"
    ? [new TextEncoder().encode(data)]
    : data instanceof Uint8Array
    ? [data]
    : data;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${Deno.pid}.${++tmpCounter}.tmp`);
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    for (const part of parts) {
      let off = 0;
      while (off < part.length) off += await file.write(part.subarray(off));
    }
    await file.sync();
  } catch (err) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dir);
}
