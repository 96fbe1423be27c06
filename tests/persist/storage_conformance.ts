/**
 * The Storage contract as executable cases, run against every DurableStorage implementation.
 * Each case may call `restart()`: a durable implementation closes and reopens from disk, an
 * in-memory one returns the same object, so every case doubles as a recovery test on disk.
 */
import assert from "node:assert/strict";
import { CompactedError, type DurableStorage, UnavailableError } from "../../raft/storage.ts";
import type { Entry, Snapshot } from "../../raft/types.ts";

/** What a conformance case gets: the storage and a way to simulate a clean restart. */
export interface StorageHarness {
  storage: DurableStorage;
  /** Closes and reopens (durable) or returns the same storage (in memory). */
  restart(): Promise<DurableStorage>;
  /** Releases everything, including temporary directories. */
  cleanup(): Promise<void>;
}

/** Makes a fresh, empty storage for a cluster of `peers`. */
export type StorageFactory = (peers: number[]) => Promise<StorageHarness>;

/** Entries [from, to] with `term` and data derived from index and term. */
export function ents(from: number, to: number, term: number, size = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    const data = new Uint8Array(size);
    for (let k = 0; k < size; k++) data[k] = (i * 31 + term * 7 + k) & 0xff;
    out.push({ index: i, term, data });
  }
  return out;
}

/** A snapshot at (index, term) with a small recognisable payload. */
export function snap(index: number, term: number, peers = [1, 2, 3]): Snapshot {
  return {
    meta: { index, term, conf: { peers } },
    data: new TextEncoder().encode(`state@${index}`),
  };
}

/** Asserts the log holds exactly `want` (after the snapshot point), by entries() and term(). */
export function assertLog(s: DurableStorage, first: number, want: Entry[]): void {
  assert.equal(s.firstIndex(), first, "firstIndex");
  assert.equal(s.lastIndex(), first - 1 + want.length, "lastIndex");
  const got = s.entries(first, first + want.length);
  assert.deepEqual(
    got.map((e) => [e.index, e.term, [...e.data]]),
    want.map((e) => [e.index, e.term, [...e.data]]),
  );
  for (const e of want) assert.equal(s.term(e.index), e.term);
}

type Case = (h: StorageHarness) => Promise<void>;

const CASES: Record<string, Case> = {
  "starts empty with the given membership": async (h) => {
    let s = h.storage;
    for (let round = 0; round < 2; round++) {
      const init = s.initialState();
      assert.deepEqual(init.hardState, { term: 0, vote: 0, commit: 0 });
      assert.deepEqual(init.conf.peers, [1, 2, 3]);
      assert.equal(s.firstIndex(), 1);
      assert.equal(s.lastIndex(), 0);
      assert.equal(s.term(0), 0);
      assert.equal(s.snapshot().meta.index, 0);
      assert.deepEqual(s.entries(1, 1), []);
      s = await h.restart();
    }
  },

  "saves and reads back entries and hard state": async (h) => {
    let s = h.storage;
    await s.save({ term: 2, vote: 3, commit: 1 }, ents(1, 5, 2));
    assertLog(s, 1, ents(1, 5, 2));
    assert.deepEqual(s.initialState().hardState, { term: 2, vote: 3, commit: 1 });
    await s.save({ term: 2, vote: 3, commit: 4 }, []);
    await s.save(undefined, ents(6, 6, 2));
    s = await h.restart();
    assertLog(s, 1, ents(1, 6, 2));
    assert.deepEqual(s.initialState().hardState, { term: 2, vote: 3, commit: 4 });
  },

  "reads reflect a save before it resolves": async (h) => {
    const s = h.storage;
    const p = s.save({ term: 1, vote: 1, commit: 0 }, ents(1, 3, 1));
    assert.equal(s.lastIndex(), 3);
    assert.equal(s.term(3), 1);
    assert.equal(s.initialState().hardState.vote, 1);
    await p;
  },

  "entries() honours maxBytes but returns at least one": async (h) => {
    const s = h.storage;
    await s.save(undefined, ents(1, 10, 1, 10));
    assert.equal(s.entries(1, 11, 25).length, 2);
    assert.equal(s.entries(1, 11, 30).length, 3);
    assert.equal(s.entries(1, 11, 0).length, 1);
    assert.equal(s.entries(4, 11).length, 7);
    assert.equal(s.entries(4, 11)[0].index, 4);
  },

  "reads outside the log throw Compacted/Unavailable": async (h) => {
    const s = h.storage;
    await s.save(undefined, ents(1, 5, 1));
    assert.throws(() => s.entries(0, 2), CompactedError);
    assert.throws(() => s.entries(1, 7), UnavailableError);
    assert.throws(() => s.term(6), UnavailableError);
    await s.compact(snap(3, 1));
    assert.throws(() => s.entries(3, 5), CompactedError);
    assert.throws(() => s.term(2), CompactedError);
    assert.equal(s.term(3), 1);
  },

  "a save at an existing index truncates the conflicting suffix": async (h) => {
    let s = h.storage;
    await s.save({ term: 1, vote: 1, commit: 0 }, ents(1, 5, 1));
    await s.save({ term: 2, vote: 2, commit: 0 }, ents(3, 4, 2));
    const want = [...ents(1, 2, 1), ...ents(3, 4, 2)];
    assertLog(s, 1, want);
    assert.throws(() => s.term(5), UnavailableError);
    s = await h.restart();
    assertLog(s, 1, want);
    // Appending after the truncation point continues the new branch.
    await s.save(undefined, ents(5, 6, 2));
    s = await h.restart();
    assertLog(s, 1, [...want, ...ents(5, 6, 2)]);
  },

  "a save that would leave a gap is refused": async (h) => {
    const s = h.storage;
    await s.save(undefined, ents(1, 3, 1));
    await assert.rejects(async () => await s.save(undefined, ents(5, 6, 1)), RangeError);
    assertLog(s, 1, ents(1, 3, 1));
  },

  "compact drops the covered log and keeps the snapshot": async (h) => {
    let s = h.storage;
    await s.save({ term: 1, vote: 1, commit: 10 }, ents(1, 10, 1));
    await s.compact(snap(6, 1));
    assertLog(s, 7, ents(7, 10, 1));
    assert.equal(s.term(6), 1);
    assert.equal(s.snapshot().meta.index, 6);
    assert.deepEqual(s.snapshot().data, new TextEncoder().encode("state@6"));
    // Older or equal snapshots change nothing.
    await s.compact(snap(4, 1));
    assert.equal(s.firstIndex(), 7);
    s = await h.restart();
    assertLog(s, 7, ents(7, 10, 1));
    assert.equal(s.snapshot().meta.index, 6);
    assert.deepEqual(s.snapshot().data, new TextEncoder().encode("state@6"));
    assert.deepEqual(s.initialState().conf.peers, [1, 2, 3]);
  },

  "compact past the last index is refused": async (h) => {
    const s = h.storage;
    await s.save(undefined, ents(1, 3, 1));
    await assert.rejects(async () => await s.compact(snap(5, 1)));
    assert.equal(s.firstIndex(), 1);
  },

  "entries at or below the snapshot index are skipped on save": async (h) => {
    let s = h.storage;
    await s.save(undefined, ents(1, 6, 1));
    await s.compact(snap(4, 1));
    await s.save(undefined, ents(3, 8, 1));
    assertLog(s, 5, ents(5, 8, 1));
    s = await h.restart();
    assertLog(s, 5, ents(5, 8, 1));
  },

  "an installed snapshot replaces a log that disagrees with it": async (h) => {
    let s = h.storage;
    await s.save({ term: 1, vote: 1, commit: 2 }, ents(1, 5, 1));
    await s.save({ term: 3, vote: 0, commit: 20 }, [], snap(20, 3, [1, 2, 3, 4]));
    assertLog(s, 21, []);
    assert.equal(s.term(20), 3);
    assert.deepEqual(s.initialState().conf.peers, [1, 2, 3, 4]);
    await s.save(undefined, ents(21, 22, 3));
    s = await h.restart();
    assertLog(s, 21, ents(21, 22, 3));
    assert.equal(s.snapshot().meta.index, 20);
    assert.deepEqual(s.initialState().hardState, { term: 3, vote: 0, commit: 20 });
    assert.deepEqual(s.initialState().conf.peers, [1, 2, 3, 4]);
  },

  "an installed snapshot keeps the entries that agree with it": async (h) => {
    let s = h.storage;
    await s.save(undefined, ents(1, 8, 2));
    await s.save(undefined, [], snap(5, 2));
    assertLog(s, 6, ents(6, 8, 2));
    s = await h.restart();
    assertLog(s, 6, ents(6, 8, 2));
  },

  "an installed snapshot with entries in the same save": async (h) => {
    let s = h.storage;
    await s.save(undefined, ents(1, 3, 1));
    await s.save({ term: 4, vote: 2, commit: 10 }, ents(11, 12, 4), snap(10, 4));
    assertLog(s, 11, ents(11, 12, 4));
    s = await h.restart();
    assertLog(s, 11, ents(11, 12, 4));
    assert.equal(s.initialState().hardState.term, 4);
  },

  "concurrent saves apply in call order": async (h) => {
    let s = h.storage;
    const all: Promise<void>[] = [];
    for (let i = 1; i <= 50; i++) {
      all.push(s.save({ term: 1, vote: 1, commit: i - 1 }, ents(i, i, 1)));
    }
    all.push(s.save({ term: 2, vote: 2, commit: 49 }, ents(40, 45, 2)));
    await Promise.all(all);
    const want = [...ents(1, 39, 1), ...ents(40, 45, 2)];
    assertLog(s, 1, want);
    s = await h.restart();
    assertLog(s, 1, want);
    assert.deepEqual(s.initialState().hardState, { term: 2, vote: 2, commit: 49 });
  },
};

/** Registers one Deno test per contract case for the storage `name` built by `factory`. */
export function storageConformance(name: string, factory: StorageFactory): void {
  for (const [title, run] of Object.entries(CASES)) {
    Deno.test(`${name}: ${title}`, async () => {
      const h = await factory([1, 2, 3]);
      try {
        await run(h);
      } finally {
        await h.cleanup();
      }
    });
  }
}
