import assert from "node:assert/strict";
import { join } from "node:path";
import { segmentName, WalCorruptionError } from "../../persist/wal.ts";
import { encodeBatch } from "../../persist/wal_record.ts";
import type { HardState } from "../../raft/types.ts";
import { assertLog, ents } from "./storage_conformance.ts";
import { open, withDir } from "./helpers.ts";

const hs = (term: number, commit: number): HardState => ({ term, vote: 1, commit });

async function segmentFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dir, "wal"))) names.push(e.name);
  return names.sort();
}

Deno.test("WAL cut at every byte offset inside its last batch recovers exactly the earlier records", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    for (let i = 0; i < 4; i++) await s.save(hs(1, i * 2), ents(i * 2 + 1, i * 2 + 2, 1));
    const before = s.walBytes();
    const lastEntries = ents(9, 11, 2);
    await s.save(hs(2, 8), lastEntries);
    const after = s.walBytes();
    await s.close();
    // The last save is an entries record followed by a hard state record.
    assert.equal(after - before, encodeBatch(hs(2, 8), lastEntries).length);
    const entriesEnd = before + encodeBatch(undefined, lastEntries).length;
    const path = join(dir, "wal", segmentName(0));
    const full = (await Deno.readFile(path)).subarray(0, after);
    // A cut either ends the file (no preallocation) or leaves zeros where the lost bytes were
    // (a preallocated segment keeps its size).
    for (const shape of ["ends", "zeroed"]) {
      for (let cut = before; cut < after; cut++) {
        const kept = full.subarray(0, cut);
        const file = shape === "ends" ? kept : new Uint8Array(after + 4096);
        if (shape === "zeroed") file.set(kept);
        await Deno.writeFile(path, file);
        const lines: string[] = [];
        const r = await open(dir, lines);
        try {
          const haveLast = cut >= entriesEnd;
          assertLog(r, 1, haveLast ? [...ents(1, 8, 1), ...lastEntries] : ents(1, 8, 1));
          assert.deepEqual(r.initialState().hardState, hs(1, 6));
          const valid = haveLast ? entriesEnd : before;
          assert.equal(r.walBytes(), valid);
          // Zero bytes of a partial record are indistinguishable from preallocated space.
          const damaged = shape === "ends"
            ? cut > valid
            : full.subarray(valid, cut).some((b) => b !== 0);
          if (damaged) {
            assert.equal(lines.length, 1, `${shape} ${cut}`);
            assert.match(lines[0], new RegExp(`${segmentName(0)}.*offset ${valid}`));
            // Exactly what was dropped: the bytes up to the last non-zero one, in one record.
            let end = file.length;
            while (end > 0 && file[end - 1] === 0) end--;
            assert.match(lines[0], new RegExp(`dropped ${end - valid} bytes in 1 record \\(`));
          } else {
            assert.equal(lines.length, 0, `${shape} ${cut}: ${lines}`);
          }
          // The truncated log takes new writes and keeps them.
          await r.save(hs(3, 8), ents(r.lastIndex() + 1, r.lastIndex() + 1, 3));
        } finally {
          await r.close();
        }
        const again = await open(dir);
        assert.equal(again.initialState().hardState.term, 3);
        assert.equal(again.term(again.lastIndex()), 3);
        await again.close();
      }
    }
  });
});

Deno.test("a torn tail's repair says the file, the offset, and exactly the bytes and records dropped", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 1 << 20, 0);
    for (let i = 0; i < 4; i++) await s.save(hs(1, i * 2), ents(i * 2 + 1, i * 2 + 2, 1));
    const before = s.walBytes();
    const last = ents(9, 11, 2);
    await s.save(hs(2, 8), last);
    const after = s.walBytes();
    await s.close();
    const path = join(dir, "wal", segmentName(0));
    const full = await Deno.readFile(path);
    assert.equal(full.length, after);
    // A power cut that kept a bad copy of the entries record and half the hard state record:
    // both records of the last batch go, 8 records (4 batches of entries + hard state) stay.
    const entriesEnd = before + encodeBatch(undefined, last).length;
    const cut = entriesEnd + 10;
    const torn = full.slice(0, cut);
    torn[before + 30] ^= 0xff;
    await Deno.writeFile(path, torn);
    const lines: string[] = [];
    const r = await open(dir, lines, 1 << 20, 0);
    try {
      assertLog(r, 1, ents(1, 8, 1));
      assert.equal(r.walBytes(), before);
    } finally {
      await r.close();
    }
    // The bytes up to the last non-zero one: trailing zeros look like preallocated space.
    let end = cut;
    while (torn[end - 1] === 0) end--;
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.equal(
      lines[0],
      `WAL ${path}: repaired a torn tail at offset ${before}: dropped ${end - before} bytes ` +
        "in 2 records (the first: CRC mismatch) after 8 valid records",
    );
  });
});

Deno.test("a flipped bit in the middle of a segment refuses to start, naming file and offset", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    const offsets: number[] = [];
    for (let i = 1; i <= 20; i++) {
      offsets.push(s.walBytes());
      await s.save(undefined, ents(i, i, 1, 50));
    }
    await s.close();
    const path = join(dir, "wal", segmentName(0));
    const bytes = await Deno.readFile(path);
    const victim = offsets[10];
    bytes[victim + 30] ^= 0x10;
    await Deno.writeFile(path, bytes);
    await assert.rejects(open(dir), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.equal(err.file, segmentName(0));
      assert.equal(err.offset, victim);
      assert.match(err.message, new RegExp(`${segmentName(0)}.*CRC mismatch.*offset ${victim}`));
      return true;
    });
    // Corrupting the length field is caught the same way.
    bytes[victim + 30] ^= 0x10;
    bytes[victim + 2] ^= 0x01;
    await Deno.writeFile(path, bytes);
    await assert.rejects(open(dir), WalCorruptionError);
  });
});

Deno.test("damage followed by valid records refuses to start even if it looks unwritten", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    for (let i = 0; i < 4; i++) await s.save(hs(1, i * 2), ents(i * 2 + 1, i * 2 + 2, 1, 40));
    const before = s.walBytes();
    // One batch of about 3 KB: an entries record followed by a hard state record.
    await s.save(hs(2, 8), ents(9, 30, 2, 128));
    const after = s.walBytes();
    await s.close();
    const path = join(dir, "wal", segmentName(0));
    const bytes = await Deno.readFile(path);
    // A zeroed sector inside the batch, its hard state record intact: a power cut that wrote
    // the batch's later pages first looks like this, but so does a synced batch that the disk
    // damaged. Dropping the batch could forget acknowledged entries and the vote of term 2.
    const hole = Math.ceil((before + 600) / 512) * 512;
    assert.ok(hole + 512 < after - 40, "the hole lies inside the entries record");
    bytes.fill(0, hole, hole + 512);
    await Deno.writeFile(path, bytes);
    await assert.rejects(open(dir), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.equal(err.offset, before);
      assert.match(err.message, /valid records follow .* refusing to start/);
      return true;
    });
  });
});

Deno.test("a bad record at the end of a non-last segment refuses to start", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 256);
    for (let i = 1; i <= 30; i++) await s.save(hs(1, i - 1), ents(i, i, 1, 40));
    assert.ok(s.walSegments() >= 3);
    await s.close();
    const names = await segmentFiles(dir);
    const path = join(dir, "wal", names[1]);
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 3] ^= 0xff; // inside the last record of a sealed segment
    await Deno.writeFile(path, bytes);
    await assert.rejects(open(dir), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.equal(err.file, names[1]);
      return true;
    });
  });
});

Deno.test("a missing segment in the middle refuses to start", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 256);
    for (let i = 1; i <= 30; i++) await s.save(undefined, ents(i, i, 1, 40));
    await s.close();
    const names = await segmentFiles(dir);
    await Deno.remove(join(dir, "wal", names[1]));
    await assert.rejects(open(dir), /is missing/);
  });
});

Deno.test("zeros after the records are preallocated space: no damage, new records go there", async () => {
  await withDir(async (dir) => {
    const preallocate = 64 * 1024;
    const s = await open(dir, [], 1 << 20, preallocate);
    await s.save(hs(1, 0), ents(1, 3, 1));
    const size = s.walBytes();
    await s.close();
    const path = join(dir, "wal", segmentName(0));
    const allocated = (await Deno.stat(path)).size;
    assert.ok(allocated >= size + preallocate / 2, `file ${allocated} bytes, records ${size}`);
    const lines: string[] = [];
    const r = await open(dir, lines, 1 << 20, 0);
    assertLog(r, 1, ents(1, 3, 1));
    assert.equal(r.walBytes(), size);
    assert.deepEqual(lines, []);
    await r.save(hs(2, 3), ents(4, 5, 2));
    await r.close();
    // Written in place: the file did not grow, and both batches read back.
    assert.equal((await Deno.stat(path)).size, allocated);
    const again = await open(dir, lines, 1 << 20, 0);
    assertLog(again, 1, [...ents(1, 3, 1), ...ents(4, 5, 2)]);
    assert.deepEqual(lines, []);
    await again.close();
  });
});

Deno.test("without preallocation the segment holds the records only", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 1 << 20, 0);
    await s.save(hs(1, 0), ents(1, 3, 1));
    const size = s.walBytes();
    await s.close();
    assert.equal((await Deno.stat(join(dir, "wal", segmentName(0)))).size, size);
  });
});

Deno.test("power loss: every synced batch survives any cut of the unsynced bytes", async () => {
  await withDir(async (dir) => {
    // Record, after each resolved save, the global byte position that was synced.
    // Written without preallocation so that file offsets add up to walBytes().
    const s = await open(dir, [], 600, 0);
    const synced: number[] = [s.walBytes()];
    const nSaves = 40;
    for (let i = 1; i <= nSaves; i++) {
      // Every 7th save rewrites the last two entries with a new term (a conflict truncation).
      const batch = i % 7 === 0
        ? ents(s.lastIndex() - 1, s.lastIndex() + 1, i)
        : ents(s.lastIndex() + 1, s.lastIndex() + 3, i);
      await s.save(hs(i, 0), batch);
      synced.push(s.walBytes());
    }
    // Expected log after each save, computed by replaying the same saves in memory.
    const expected: { log: ReturnType<typeof ents>; term: number }[] = [{ log: [], term: 0 }];
    {
      let log: ReturnType<typeof ents> = [];
      for (let i = 1; i <= nSaves; i++) {
        const last = log.length;
        const batch = i % 7 === 0 ? ents(last - 1, last + 1, i) : ents(last + 1, last + 3, i);
        log = [...log.slice(0, batch[0].index - 1), ...batch];
        expected.push({ log, term: i });
      }
    }
    assertLog(s, 1, expected[nSaves].log);
    assert.ok(s.walSegments() >= 4);
    await s.close();
    const names = await segmentFiles(dir);
    const originals = await Promise.all(names.map((n) => Deno.readFile(join(dir, "wal", n))));
    const starts: number[] = [];
    let total = 0;
    for (const o of originals) {
      starts.push(total);
      total += o.length;
    }
    assert.equal(total, synced[nSaves]);
    // Deterministic pseudo-random cuts plus every batch boundary.
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const cuts = [...synced, ...Array.from({ length: 40 }, () => Math.floor(rand() * total))];
    for (const [cut, shape] of cuts.flatMap((c) => [[c, "ends"], [c, "zeroed"]] as const)) {
      // Power loss at `cut`: the segment holding it is cut there (its file ends, or keeps its
      // preallocated size with zeros where the lost bytes were); later segments never existed,
      // except a preallocated one created right at the cut (a segment is created only once the
      // one before is synced whole).
      for (let k = 0; k < names.length; k++) {
        const p = join(dir, "wal", names[k]);
        const kept = originals[k].subarray(0, Math.max(0, cut - starts[k]));
        if (k > 0 && (starts[k] > cut || (starts[k] === cut && shape === "ends"))) {
          await Deno.remove(p).catch(() => {});
        } else if (shape === "ends") {
          await Deno.writeFile(p, kept);
        } else {
          const file = new Uint8Array(originals[k].length + 512);
          file.set(kept);
          await Deno.writeFile(p, file);
        }
      }
      const k = synced.filter((b) => b <= cut).length - 1; // saves fully synced before the cut
      const r = await open(dir);
      try {
        const got = r.entries(1, r.lastIndex() + 1).map((e) => [e.index, e.term]);
        const term = r.initialState().hardState.term;
        const want = expected[k].log.map((e) => [e.index, e.term]);
        // Everything synced is there; of the batch in flight, a prefix of its records may be.
        if (JSON.stringify(got) === JSON.stringify(want)) {
          assert.equal(term, k, `cut ${cut}`);
        } else {
          assert.deepEqual(got, expected[k + 1].log.map((e) => [e.index, e.term]), `cut ${cut}`);
          assert.ok(term === k || term === k + 1, `cut ${cut}`);
        }
      } finally {
        await r.close();
      }
    }
  });
});

Deno.test("recovery after a conflict truncation spanning segments", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 300);
    for (let i = 1; i <= 40; i += 4) await s.save(hs(1, 0), ents(i, i + 3, 1, 20));
    await s.save(hs(2, 0), ents(10, 12, 2, 20));
    await s.save(hs(2, 0), ents(13, 14, 2, 20));
    await s.save(hs(3, 0), ents(14, 14, 3, 20));
    assert.ok(s.walSegments() >= 4);
    await s.close();
    const r = await open(dir, [], 300);
    assertLog(r, 1, [...ents(1, 9, 1, 20), ...ents(10, 13, 2, 20), ...ents(14, 14, 3, 20)]);
    assert.deepEqual(r.initialState().hardState, hs(3, 0));
    await r.close();
  });
});

Deno.test("a second open of the same directory fails clearly", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await assert.rejects(open(dir), /locked by another process/);
    await s.close();
    const again = await open(dir);
    await again.close();
  });
});

Deno.test("a failed write poisons the storage", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.save(hs(1, 0), ents(1, 1, 1));
    await s.close();
    await assert.rejects(s.save(hs(1, 0), ents(2, 2, 1)), /closed/);
  });
});
