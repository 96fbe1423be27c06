import assert from "node:assert/strict";
import { join } from "node:path";
import { DiskStorage } from "../../persist/disk_storage.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  SnapshotCorruptionError,
  snapshotFileName,
} from "../../persist/snapshot.ts";
import { WalCorruptionError } from "../../persist/wal.ts";
import { assertLog, ents, snap } from "./storage_conformance.ts";
import { open, withDir } from "./helpers.ts";

async function dirBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile) continue;
    bytes += (await Deno.stat(join(dir, e.name))).size;
    files++;
  }
  return { bytes, files };
}

async function corrupt(path: string, at: (len: number) => number): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[at(bytes.length)] ^= 0x04;
  await Deno.writeFile(path, bytes);
}

Deno.test("snapshot encoding round-trips and detects damage anywhere", () => {
  const s = snap(1234, 7, [1, 2, 5]);
  const bytes = encodeSnapshot(s);
  const back = decodeSnapshot(bytes);
  assert.deepEqual(back.meta, s.meta);
  assert.deepEqual(back.data, s.data);
  for (let i = 0; i < bytes.length; i++) {
    const bad = bytes.slice();
    bad[i] ^= 0x01;
    assert.throws(() => decodeSnapshot(bad), SnapshotCorruptionError, `byte ${i}`);
  }
  assert.throws(() => decodeSnapshot(bytes.subarray(0, bytes.length - 1)), SnapshotCorruptionError);
  assert.equal(snapshotFileName(255, 3), "00000000000000ff-0000000000000003.snap");
});

Deno.test("compaction deletes WAL segments and bounds disk use under a long write load", async () => {
  await withDir(async (dir) => {
    const segmentBytes = 8192;
    const s = await open(dir, [], segmentBytes);
    const entrySize = 100;
    const batch = 16;
    const compactEvery = 1024; // entries between snapshots
    // Bound: the WAL is kept from the older of the two kept snapshots, so it holds at most
    // 2 * compactEvery entries (each ≤ 112 bytes + batch overhead < 120) plus one partly covered
    // sealed segment and the active one.
    const bound = 2 * compactEvery * 120 + 2 * segmentBytes;
    let maxSeen = 0;
    let written = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < compactEvery; i += batch) {
        const first = s.lastIndex() + 1;
        await s.save(
          { term: 1, vote: 1, commit: first - 1 },
          ents(first, first + batch - 1, 1, entrySize),
        );
        written += batch * entrySize;
      }
      await s.compact(snap(s.lastIndex(), 1));
      const onDisk = await dirBytes(join(dir, "wal"));
      // Files hold the records plus at most one run of preallocated zeros each (a run is
      // capped at the segment size).
      assert.ok(onDisk.bytes >= s.walBytes(), `${onDisk.bytes} bytes on disk`);
      assert.ok(
        onDisk.bytes <= s.walBytes() + onDisk.files * segmentBytes,
        `${onDisk.bytes} bytes on disk for ${s.walBytes()} bytes of records`,
      );
      assert.equal(onDisk.files, s.walSegments());
      maxSeen = Math.max(maxSeen, s.walBytes());
      assert.ok(s.walBytes() <= bound, `WAL ${s.walBytes()} bytes > bound ${bound}`);
      assert.ok(s.snapshotCount() <= 2);
      assert.equal((await dirBytes(join(dir, "snap"))).files, s.snapshotCount());
    }
    assert.ok(written > 10 * maxSeen, "the load wrote far more than the bound");
    // Keep writing past the last snapshot, then recover from disk.
    await s.save({ term: 2, vote: 1, commit: 0 }, ents(s.lastIndex() + 1, s.lastIndex() + 5, 2));
    const last = s.lastIndex();
    await s.close();
    const r = await open(dir, [], segmentBytes);
    assert.equal(r.snapshot().meta.index, last - 5);
    assertLog(r, last - 4, ents(last - 4, last, 2, 8));
    await r.close();
  });
});

Deno.test("onSync reports every WAL fdatasync", async () => {
  await withDir(async (dir) => {
    const times: number[] = [];
    const s = await DiskStorage.open(dir, { log: () => {}, onSync: (ms) => times.push(ms) });
    await s.save({ term: 1, vote: 0, commit: 0 }, []);
    await s.save(undefined, ents(1, 2, 1));
    assert.equal(times.length, 2);
    assert.ok(times.every((t) => t >= 0));
    await s.close();
  });
});

Deno.test("onSnapshotSave reports each snapshot file write, compacted or installed", async () => {
  await withDir(async (dir) => {
    const times: number[] = [];
    const s = await DiskStorage.open(dir, {
      log: () => {},
      onSnapshotSave: (ms) => times.push(ms),
    });
    await s.save({ term: 1, vote: 0, commit: 4 }, ents(1, 4, 1));
    await s.compact(snap(2, 1));
    assert.equal(times.length, 1);
    await s.save({ term: 2, vote: 0, commit: 9 }, [], snap(9, 2));
    assert.equal(times.length, 2);
    assert.ok(times.every((t) => t >= 0));
    await s.close();
  });
});

Deno.test("a corrupt newest snapshot falls back to the older one and the WAL above it", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 512);
    for (let i = 1; i <= 40; i += 4) {
      await s.save({ term: 1, vote: 1, commit: i }, ents(i, i + 3, 1, 30));
    }
    await s.compact(snap(10, 1));
    await s.compact(snap(30, 1));
    assert.equal(s.snapshotCount(), 2);
    await s.close();
    const newest = join(dir, "snap", snapshotFileName(30, 1));
    await corrupt(newest, (n) => n - 2);
    const lines: string[] = [];
    const r = await open(dir, lines, 512);
    assert.equal(r.snapshot().meta.index, 10);
    assert.deepEqual(r.snapshot().data, new TextEncoder().encode("state@10"));
    assertLog(r, 11, ents(11, 40, 1, 30));
    assert.match(
      lines.join("\n"),
      /Skipping snapshot .*000000000000001e-0000000000000001\.snap: Invalid snapshot: data CRC mismatch/,
    );
    assert.equal(r.snapshotCount(), 1);
    await r.close();
    // The corrupt file is kept for inspection under another name, out of the way.
    assert.ok((await Deno.stat(`${newest}.broken`)).isFile);
  });
});

Deno.test("with every snapshot corrupt and the WAL compacted, open refuses clearly", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 256);
    for (let i = 1; i <= 60; i += 4) {
      await s.save({ term: 1, vote: 1, commit: i }, ents(i, i + 3, 1, 30));
    }
    await s.compact(snap(20, 1));
    await s.compact(snap(50, 1));
    await s.close();
    await corrupt(join(dir, "snap", snapshotFileName(20, 1)), () => 3);
    await corrupt(join(dir, "snap", snapshotFileName(50, 1)), () => 3);
    await assert.rejects(open(dir, [], 256), (err: unknown) => {
      assert.ok(err instanceof WalCorruptionError);
      assert.match(err.message, /the log ends at 0.*snapshot/);
      return true;
    });
  });
});

Deno.test("an installed snapshot whose file is lost refuses to start instead of losing the log", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.save({ term: 1, vote: 1, commit: 1 }, ents(1, 3, 1));
    await s.save({ term: 3, vote: 0, commit: 50 }, [], snap(50, 3));
    await s.save(undefined, ents(51, 52, 3));
    await s.close();
    await Deno.remove(join(dir, "snap", snapshotFileName(50, 3)));
    await assert.rejects(open(dir), /installs snapshot 50 but the newest valid snapshot file is 0/);
  });
});

Deno.test("leftover temporary snapshot files are removed and old ones pruned on open", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.save(undefined, ents(1, 10, 1));
    await s.compact(snap(5, 1));
    await s.close();
    await Deno.writeFile(join(dir, "snap", "junk.snap.7.tmp"), new Uint8Array(10));
    // An older snapshot than the kept window, as a crash between write and prune would leave.
    await Deno.writeFile(join(dir, "snap", snapshotFileName(1, 1)), encodeSnapshot(snap(1, 1)));
    await Deno.writeFile(join(dir, "snap", snapshotFileName(2, 1)), encodeSnapshot(snap(2, 1)));
    const r = await open(dir);
    const names = [...Deno.readDirSync(join(dir, "snap"))].map((e) => e.name).sort();
    assert.deepEqual(names, [snapshotFileName(2, 1), snapshotFileName(5, 1)]);
    assert.equal(r.snapshot().meta.index, 5);
    assertLog(r, 6, ents(6, 10, 1));
    await r.close();
  });
});

Deno.test("commit recovered below the snapshot index is raised to it", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.save({ term: 1, vote: 1, commit: 2 }, ents(1, 10, 1));
    await s.compact(snap(8, 1));
    await s.close();
    const r = await open(dir);
    assert.deepEqual(r.initialState().hardState, { term: 1, vote: 1, commit: 8 });
    await r.close();
  });
});

Deno.test("the hard state survives deletion of the segment that recorded it", async () => {
  await withDir(async (dir) => {
    const s = await open(dir, [], 1024);
    await s.save({ term: 5, vote: 2, commit: 0 }, ents(1, 1, 5));
    // Many saves without a hard state: the only hard state record ages out with its segment.
    for (let i = 2; i <= 200; i++) await s.save(undefined, ents(i, i, 5, 40));
    await s.compact(snap(150, 5));
    await s.compact(snap(190, 5));
    assert.ok(s.walSegments() < 10, `old segments deleted (${s.walSegments()} left)`);
    await s.close();
    const names = [...Deno.readDirSync(join(dir, "wal"))].map((e) => e.name).sort();
    assert.notEqual(names[0], "0000000000000000.wal");
    const r = await open(dir, [], 1024);
    assert.deepEqual(r.initialState().hardState, { term: 5, vote: 2, commit: 190 });
    assertLog(r, 191, ents(191, 200, 5, 40));
    await r.close();
  });
});

Deno.test("every acknowledged save survives kill -9 of the writing process", async () => {
  await withDir(async (dir) => {
    const fixture = new URL("./fixtures/wal_writer.ts", import.meta.url).pathname;
    for (let round = 0; round < 2; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", fixture, dir],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      // Kill it once it has acknowledged a few hundred saves.
      let acked = 0;
      let text = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      while (acked < 300 * (round + 1)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        const lines = text.split("\n");
        text = lines.pop()!;
        for (const l of lines) acked = Number(l);
      }
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel();
      const s = await open(dir);
      assert.ok(s.lastIndex() >= acked, `acked ${acked}, recovered ${s.lastIndex()}`);
      const last = s.entries(s.lastIndex(), s.lastIndex() + 1)[0];
      assert.equal(new TextDecoder().decode(last.data), `entry-${last.index}`);
      assert.equal(
        new TextDecoder().decode(s.entries(s.firstIndex(), s.firstIndex() + 1)[0].data),
        `entry-${s.firstIndex()}`,
      );
      await s.close();
    }
  });
});

Deno.test("DiskStorage: only entries, term and vote are written and synced; a commit moves for free", async () => {
  await withDir(async (dir) => {
    let syncs = 0;
    const s = await DiskStorage.open(dir, {
      peers: [1, 2, 3],
      log: () => {},
      onSync: () => syncs++,
    });
    await s.save({ term: 1, vote: 1, commit: 0 }, ents(1, 3, 1));
    assert.equal(syncs, 1);
    await s.save({ term: 1, vote: 1, commit: 2 }, []);
    assert.equal(syncs, 1, "a commit-only hard state must not sync");
    await s.save({ term: 2, vote: 0, commit: 2 }, []);
    assert.equal(syncs, 2, "a new term must sync");
    await s.save({ term: 2, vote: 3, commit: 2 }, []);
    assert.equal(syncs, 3, "a new vote must sync");
    await s.save({ term: 2, vote: 3, commit: 3 }, []);
    await s.close();
    // The last commit was never written on its own, but close() saves it for a clean restart.
    const reopened = await DiskStorage.open(dir, { peers: [1, 2, 3], log: () => {} });
    assert.deepEqual(reopened.initialState().hardState, { term: 2, vote: 3, commit: 3 });
    await reopened.close();
  });
});
