/**
 * Line-aligned splits: every split ends just after a newline or at the end of the file, no
 * split cuts a line, a CRLF or a UTF-8 sequence, and the splits put back together are the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { groupSplits, parseSize, type Split, SplitError, splitFile } from "../../mr/splits.ts";
import { withTempDir } from "./helpers.ts";

const utf8 = new TextEncoder();

async function splitBytes(path: string, splits: Split[]): Promise<Uint8Array[]> {
  const data = await Deno.readFile(path);
  return splits.map((s) => data.subarray(s.offset, s.offset + s.length));
}

/** Checks the invariants every split list must keep; returns the pieces. */
async function checkSplits(path: string, splits: Split[], splitSize: number): Promise<string[]> {
  const data = await Deno.readFile(path);
  const pieces = await splitBytes(path, splits);
  // Concatenation equals the file, in order, without gaps or overlaps.
  assert.deepEqual(new Uint8Array(pieces.flatMap((p) => [...p])), data);
  let offset = 0;
  splits.forEach((split, i) => {
    assert.equal(split.offset, offset);
    assert.equal(split.part, i);
    assert.equal(split.parts, splits.length);
    offset += split.length;
    const last = i === splits.length - 1;
    // Every split but the last ends just after a newline and is at least splitSize long.
    if (!last) {
      assert.equal(data[split.offset + split.length - 1], 0x0a, `split ${i} ends a line`);
      assert.ok(split.length >= splitSize, `split ${i} is at least the split size`);
    }
    // A split starts a line: the byte before it is a newline.
    if (split.offset > 0) assert.equal(data[split.offset - 1], 0x0a);
  });
  // Every piece is valid UTF-8 on its own (fatal decoding throws on a cut sequence).
  return pieces.map((p) => new TextDecoder("utf-8", { fatal: true }).decode(p));
}

Deno.test("splits: short lines, a split size that falls everywhere", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "lines.txt");
    const text = Array.from({ length: 200 }, (_, i) => `line ${i} ${"x".repeat(i % 13)}\n`)
      .join("");
    await Deno.writeTextFile(path, text);
    for (const size of [1, 2, 3, 7, 16, 100, 1000, text.length - 1, text.length, 1 << 20]) {
      const splits = await splitFile("lines.txt", path, size);
      const pieces = await checkSplits(path, splits, size);
      assert.equal(pieces.join(""), text);
      assert.ok(splits.every((s) => s.file === "lines.txt"));
      if (size >= text.length) assert.equal(splits.length, 1, `size ${size}`);
    }
  });
});

Deno.test("splits: a line longer than the split size stays whole", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "long.txt");
    const long = "y".repeat(300_000); // crosses several scan chunks
    await Deno.writeTextFile(path, `a\n${long}\nb\nc\n`);
    const splits = await splitFile("long.txt", path, 10);
    const pieces = await checkSplits(path, splits, 10);
    assert.ok(pieces.includes(`${long}\n`) || pieces.some((p) => p.includes(`${long}\n`)));
    assert.ok(pieces.every((p) => !p.includes("y") || p.includes(`${long}\n`)), "never cut");
  });
});

Deno.test("splits: no newline at the end, and an empty file gives one empty split", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tail.txt");
    await Deno.writeTextFile(path, "one\ntwo\nthree without newline");
    const splits = await splitFile("tail.txt", path, 4);
    const pieces = await checkSplits(path, splits, 4);
    assert.equal(pieces.at(-1), "three without newline");

    const nonl = join(dir, "nonl.txt");
    await Deno.writeTextFile(nonl, "just one line, no newline at all");
    assert.equal((await splitFile("nonl.txt", nonl, 3)).length, 1);

    const empty = join(dir, "empty.txt");
    await Deno.writeTextFile(empty, "");
    // One empty split: map() sees every input file once, as in a sequential run.
    assert.deepEqual(await splitFile("empty.txt", empty, 4), [
      { file: "empty.txt", path: empty, offset: 0, length: 0, part: 0, parts: 1 },
    ]);
  });
});

Deno.test("splits: CRLF line ends are never cut between CR and LF", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "crlf.txt");
    const text = Array.from({ length: 50 }, (_, i) => `row ${i}\r\n`).join("");
    await Deno.writeTextFile(path, text);
    for (let size = 1; size < 40; size++) {
      const pieces = await checkSplits(path, await splitFile("crlf.txt", path, size), size);
      for (const piece of pieces) assert.match(piece, /^(row \d+\r\n)+$/, `size ${size}`);
    }
  });
});

Deno.test("splits: multibyte UTF-8 at every boundary position stays whole", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "utf8.txt");
    // 2-, 3- and 4-byte sequences on lines of varied length: with every split size from 1 to
    // the file's length, the nominal cut lands on every byte of every sequence.
    const text = "é\nçé\n東京\n𝒜𝒜\naé東𝒜\n\n日本語のテキスト\nZürich façade\n𝒜\n";
    const bytes = utf8.encode(text);
    await Deno.writeFile(path, bytes);
    for (let size = 1; size <= bytes.length; size++) {
      const splits = await splitFile("utf8.txt", path, size);
      const pieces = await checkSplits(path, splits, size);
      assert.equal(pieces.join(""), text, `size ${size}`);
    }
  });
});

Deno.test("splits: a line longer than a map can hold is refused, naming the limit", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.txt");
    await Deno.writeTextFile(path, `short\n${"z".repeat(5000)}\nend\n`);
    await assert.rejects(
      splitFile("huge.txt", path, 100, 4096),
      (err: unknown) => {
        assert.ok(err instanceof SplitError);
        assert.match(
          err.message,
          /^Cannot split huge\.txt: the line at byte \d+ makes a split of 5007 bytes, more than the 4096 bytes one map task can hold$/,
        );
        return true;
      },
    );
  });
});

Deno.test("splits: a 1 GiB file is cut into splits a map can hold (sparse file)", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "big.txt");
    const size = 1024 * 1024 * 1024;
    // A sparse file with a newline every 8 MiB: 1 GiB long, a few KiB on disk.
    const file = await Deno.open(path, { write: true, create: true });
    try {
      await file.truncate(size);
      for (let at = 8 << 20; at < size; at += 8 << 20) {
        await file.seek(at - 1, Deno.SeekMode.Start);
        await file.write(utf8.encode("\n"));
      }
    } finally {
      file.close();
    }
    const splitSize = 64 * 1024 * 1024;
    const splits = await splitFile("big.txt", path, splitSize);
    assert.equal(splits.length, 16);
    assert.equal(splits.reduce((n, s) => n + s.length, 0), size);
    assert.ok(splits.every((s) => s.length <= splitSize + (8 << 20)));
  });
});

Deno.test("parseSize: binary units, plain bytes, and bad values", () => {
  assert.equal(parseSize("64MiB"), 64 * 1024 * 1024);
  assert.equal(parseSize("8m"), 8 * 1024 * 1024);
  assert.equal(parseSize("512KiB"), 512 * 1024);
  assert.equal(parseSize("1g"), 1024 ** 3);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("1.5k"), 1536);
  for (const bad of ["", "0", "-1", "lots", "64 MB of", "0.1"]) {
    assert.throws(() => parseSize(bad), RangeError, bad);
  }
});

/** Whole-file splits of the given sizes (one per file), for groupSplits. */
function wholeFiles(sizes: number[]): Split[] {
  return sizes.map((length, i) => ({
    file: `f${i}`,
    path: `f${i}`,
    offset: 0,
    length,
    part: 0,
    parts: 1,
  }));
}

Deno.test("groupSplits maps small files a few per task, keeps every split once and in order", () => {
  const MIB = 1024 * 1024;
  // The benchmark's shape: 16 files of about 4 MiB, 2 workers (at least 8 tasks wanted).
  const sizes = Array.from({ length: 16 }, (_, i) => (4 + (i % 3) / 10) * MIB);
  const groups = groupSplits(wholeFiles(sizes), 8);
  assert.equal(groups.length, 8);
  assert.deepEqual(groups.flat(), sizes.map((_, i) => i), "every split once, in order");
  // No grouping when there are no more splits than tasks wanted.
  assert.deepEqual(groupSplits(wholeFiles([1, 2, 3]), 4), [[0], [1], [2]]);
  assert.deepEqual(groupSplits(wholeFiles([1, 2, 3, 4]), 4), [[0], [1], [2], [3]]);
  // Many tiny files and one large one: the large one stays alone, the tiny ones share tasks, and
  // there are still about as many tasks as wanted.
  const mixed = groupSplits(wholeFiles([...Array(40).fill(1000), 400_000]), 8);
  assert.deepEqual(mixed.at(-1), [40]);
  assert.ok(mixed.length >= 2 && mixed.length <= 9, `${mixed.length} tasks`);
  // Never past maxBytes per task: 16 files of 16 MiB stay one per task.
  const big = groupSplits(wholeFiles(Array(16).fill(16 * MIB)), 8, 16 * MIB);
  assert.equal(big.length, 16);
  const capped = groupSplits(wholeFiles(sizes), 4, 9 * MIB);
  for (const group of capped) {
    assert.ok(group.reduce((n, i) => n + sizes[i], 0) <= 9 * MIB, `${group}`);
  }
});

Deno.test("groupSplits never puts a piece of a file cut in several with another split", () => {
  const splits: Split[] = [
    ...wholeFiles([100, 100]),
    { file: "big", path: "big", offset: 0, length: 500, part: 0, parts: 2 },
    { file: "big", path: "big", offset: 500, length: 400, part: 1, parts: 2 },
    ...wholeFiles([100, 100, 100]).map((s) => ({ ...s, file: `g${s.file}`, path: `g${s.path}` })),
  ];
  const groups = groupSplits(splits, 3);
  assert.deepEqual(groups.flat(), splits.map((_, i) => i));
  for (const group of groups) {
    if (group.some((i) => splits[i].parts > 1)) assert.equal(group.length, 1);
  }
});
