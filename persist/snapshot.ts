/**
 * Snapshot files `snap/<16-hex index>-<16-hex term>.snap`: a checksummed header (magic, version,
 * index, term, membership, data length, data CRC) followed by the state-machine bytes. Written to
 * a temporary file, fsynced, renamed into place and the directory fsynced, so a crash leaves
 * either the whole new snapshot or none of it; the newest few are kept for fallback.
 *
 * This file is only the format and the files. When a snapshot is taken is decided by
 * `shouldSnapshot` in raft/snapshot_policy.ts (thresholds `snapshotEntries`/`snapshotBytes`,
 * flag `--snapshot-entries`); how many files are kept is SnapshotStore's `keep`, set through
 * DiskStorage's `keepSnapshots` (default 2; the WAL is kept from the oldest kept snapshot on).
 */
import { join } from "node:path";
import { decodeConfState, encodeConfState } from "../raft/membership.ts";
import type { Snapshot } from "../raft/types.ts";
import { fsyncDir, writeFileAtomic } from "./atomic_file.ts";
import { crc32c } from "../util/crc32c.ts";

/** Thrown by decodeSnapshot when bytes are not a whole, valid snapshot file. */
export class SnapshotCorruptionError extends Error {
  constructor(reason: string) {
    super(`Invalid snapshot: ${reason}`);
    this.name = "SnapshotCorruptionError";
  }
}

const MAGIC = 0x4e534d52; // "RMSN" read as little-endian u32
/** Version 2 appends the whole configuration (learners, addresses, cluster id) as JSON. */
const VERSION = 2;
const FIXED_HEADER = 40;

/** File name of the snapshot at `index` whose term is `term`. */
export function snapshotFileName(index: number, term: number): string {
  return `${index.toString(16).padStart(16, "0")}-${term.toString(16).padStart(16, "0")}.snap`;
}

const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** Encodes the header that precedes `snap.data` in a snapshot file (and on the wire). */
export function encodeSnapshotHeader(snap: Snapshot): Uint8Array {
  const peers = snap.meta.conf.peers;
  const conf = encodeConfState(snap.meta.conf);
  const confAt = FIXED_HEADER + 4 * peers.length;
  const len = confAt + 4 + conf.length + 4;
  const buf = new Uint8Array(len);
  const view = new DataView(buf.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setFloat64(8, snap.meta.index, true);
  view.setFloat64(16, snap.meta.term, true);
  view.setFloat64(24, snap.data.length, true);
  view.setUint32(32, crc32c(snap.data), true);
  view.setUint32(36, peers.length, true);
  for (let i = 0; i < peers.length; i++) {
    const id = peers[i];
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
      throw new RangeError(`Invalid peer id in snapshot membership: ${id}`);
    }
    view.setUint32(FIXED_HEADER + 4 * i, id, true);
  }
  view.setUint32(confAt, conf.length, true);
  buf.set(conf, confAt + 4);
  view.setUint32(len - 4, crc32c(buf, 0, 0, len - 4), true);
  return buf;
}

/** Encodes a whole snapshot (header + data) into one buffer, e.g. for sending it in chunks. */
export function encodeSnapshot(snap: Snapshot): Uint8Array {
  const header = encodeSnapshotHeader(snap);
  const out = new Uint8Array(header.length + snap.data.length);
  out.set(header);
  out.set(snap.data, header.length);
  return out;
}

/**
 * Decodes and verifies the bytes of a whole snapshot file (header CRC, data length and data
 * CRC). Throws SnapshotCorruptionError naming what is wrong. The data is a view into `bytes`.
 */
export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  if (bytes.length < FIXED_HEADER + 4) throw new SnapshotCorruptionError("file too short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new SnapshotCorruptionError("bad magic");
  const version = view.getUint32(4, true);
  if (version !== 1 && version !== VERSION) {
    throw new SnapshotCorruptionError(`unsupported version ${version}`);
  }
  const count = view.getUint32(36, true);
  const confAt = FIXED_HEADER + 4 * count;
  let confLen = 0;
  if (version >= 2) {
    if (bytes.length < confAt + 4) throw new SnapshotCorruptionError("truncated header");
    confLen = view.getUint32(confAt, true);
  }
  const headerLen = confAt + (version >= 2 ? 4 + confLen : 0) + 4;
  if (bytes.length < headerLen) throw new SnapshotCorruptionError("truncated header");
  if (crc32c(bytes, 0, 0, headerLen - 4) !== view.getUint32(headerLen - 4, true)) {
    throw new SnapshotCorruptionError("header CRC mismatch");
  }
  const index = view.getFloat64(8, true);
  const term = view.getFloat64(16, true);
  const dataLen = view.getFloat64(24, true);
  for (const n of [index, term, dataLen]) {
    if (!Number.isSafeInteger(n) || n < 0) throw new SnapshotCorruptionError("bad header field");
  }
  if (bytes.length !== headerLen + dataLen) {
    throw new SnapshotCorruptionError(
      `data length ${bytes.length - headerLen} does not match header ${dataLen}`,
    );
  }
  const data = bytes.subarray(headerLen);
  if (crc32c(data) !== view.getUint32(32, true)) {
    throw new SnapshotCorruptionError("data CRC mismatch");
  }
  const peers: number[] = [];
  for (let i = 0; i < count; i++) peers.push(view.getUint32(FIXED_HEADER + 4 * i, true));
  if (version === 1) return { meta: { index, term, conf: { peers } }, data };
  let conf;
  try {
    conf = decodeConfState(bytes.subarray(confAt + 4, confAt + 4 + confLen));
  } catch (error) {
    throw new SnapshotCorruptionError((error as Error).message);
  }
  if (conf.peers.join() !== [...peers].sort((a, b) => a - b).join()) {
    throw new SnapshotCorruptionError("membership lists disagree");
  }
  return { meta: { index, term, conf }, data };
}

/** Options for SnapshotStore.open. */
export interface SnapshotStoreOptions {
  /** How many snapshot files to keep (at least 1; default 2). */
  keep?: number;
  log?: (line: string) => void;
  /** Called after each snapshot file is durable, with the write's duration in ms. */
  onSave?: (ms: number) => void;
}

interface SnapFile {
  index: number;
  term: number;
  name: string;
}

/**
 * The snapshot files of one directory. save() calls are serialised internally, so compaction
 * and an installed snapshot may overlap safely.
 */
export class SnapshotStore {
  #dir: string;
  #keep: number;
  #files: SnapFile[]; // valid files, newest first
  #newest: Snapshot | undefined;
  #chain: Promise<void> = Promise.resolve();
  #onSave?: (ms: number) => void;

  private constructor(dir: string, keep: number, files: SnapFile[], newest?: Snapshot) {
    this.#dir = dir;
    this.#keep = keep;
    this.#files = files;
    this.#newest = newest;
  }

  /**
   * Opens `dir` (creating it): deletes leftover temporary files, verifies every snapshot file,
   * renames corrupt ones to `*.broken` (logging why) and prunes beyond `keep`. The newest valid
   * snapshot is available from newest().
   */
  static async open(dir: string, opts: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const keep = Math.max(1, opts.keep ?? 2);
    await Deno.mkdir(dir, { recursive: true });
    const found: SnapFile[] = [];
    let changed = false;
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      if (e.name.endsWith(".tmp")) {
        await Deno.remove(join(dir, e.name));
        changed = true;
        continue;
      }
      const m = SNAP_RE.exec(e.name);
      if (m) found.push({ index: parseInt(m[1], 16), term: parseInt(m[2], 16), name: e.name });
    }
    found.sort((a, b) => b.index - a.index || b.term - a.term);
    const files: SnapFile[] = [];
    let newest: Snapshot | undefined;
    for (const f of found) {
      if (files.length >= keep) {
        // Older than what we keep: a crash came between writing a newer one and pruning.
        await Deno.remove(join(dir, f.name));
        changed = true;
        continue;
      }
      const path = join(dir, f.name);
      try {
        const snap = decodeSnapshot(await Deno.readFile(path));
        if (snap.meta.index !== f.index || snap.meta.term !== f.term) {
          throw new SnapshotCorruptionError(
            `header says index ${snap.meta.index} term ${snap.meta.term}`,
          );
        }
        files.push(f);
        newest ??= snap;
      } catch (err) {
        if (!(err instanceof SnapshotCorruptionError)) throw err;
        log(`Skipping snapshot ${path}: ${err.message}; renamed to ${f.name}.broken`);
        await Deno.rename(path, `${path}.broken`);
        changed = true;
      }
    }
    if (changed) await fsyncDir(dir);
    const store = new SnapshotStore(dir, keep, files, newest);
    store.#onSave = opts.onSave;
    return store;
  }

  /** The newest valid snapshot found by open() (undefined if none); not updated by save(). */
  newest(): Snapshot | undefined {
    return this.#newest;
  }

  /** Number of snapshot files kept. */
  count(): number {
    return this.#files.length;
  }

  /** Index of the oldest snapshot kept (0 if none): the WAL is needed only above it. */
  oldestIndex(): number {
    return this.#files.length === 0 ? 0 : this.#files[this.#files.length - 1].index;
  }

  /** Index of the newest snapshot kept (0 if none). */
  newestIndex(): number {
    return this.#files.length === 0 ? 0 : this.#files[0].index;
  }

  /**
   * Writes `snap` as a new snapshot file (tmp, fsync, rename, fsync dir) and then deletes files
   * beyond the newest `keep`. Durable on resolve.
   */
  save(snap: Snapshot): Promise<void> {
    const run = this.#chain.then(() => this.#save(snap));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #save(snap: Snapshot): Promise<void> {
    const { index, term } = snap.meta;
    const name = snapshotFileName(index, term);
    const path = join(this.#dir, name);
    const start = performance.now();
    await writeFileAtomic(path, [encodeSnapshotHeader(snap), snap.data]);
    this.#onSave?.(performance.now() - start);
    this.#files = this.#files.filter((f) => f.name !== name);
    this.#files.push({ index, term, name });
    this.#files.sort((a, b) => b.index - a.index || b.term - a.term);
    const doomed = this.#files.splice(this.#keep);
    if (doomed.length > 0) {
      for (const f of doomed) await Deno.remove(join(this.#dir, f.name));
      await fsyncDir(this.#dir);
    }
  }

  /** Resolves when every save() issued so far has finished (successfully or not). */
  idle(): Promise<void> {
    return this.#chain;
  }
}
