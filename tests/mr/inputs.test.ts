/**
 * The coordinator's INPUT arguments: directories and globs expand to regular files, and inputs a
 * job cannot use (missing, a FIFO, a directory with no input file) are refused at start with one
 * line and exit status 2, before anything listens or blocks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkInputs, expandInputs, InputError } from "../../mr/inputs.ts";
import { raftmr, withTempDir } from "./helpers.ts";

Deno.test("inputs: a directory gives its regular files, not .* or _*, sorted; a glob its matches", async () => {
  await withTempDir(async (dir) => {
    const books = join(dir, "books");
    await Deno.mkdir(books);
    await Deno.mkdir(join(books, "nested"));
    for (const name of ["b.txt", "a.txt", ".hidden", "_SUCCESS", "c.log"]) {
      await Deno.writeTextFile(join(books, name), name);
    }
    assert.deepEqual(await expandInputs([books]), [
      join(books, "a.txt"),
      join(books, "b.txt"),
      join(books, "c.log"),
    ]);
    assert.deepEqual(await expandInputs([join(books, "*.txt")]), [
      join(books, "a.txt"),
      join(books, "b.txt"),
    ]);
    assert.deepEqual(await expandInputs([join(books, "[bc].*")]), [
      join(books, "b.txt"),
      join(books, "c.log"),
    ]);
    // A plain name is kept as given (missing ones too: checkInputs reports them).
    assert.deepEqual(await expandInputs(["nope.txt"]), ["nope.txt"]);
    await assert.rejects(expandInputs([join(books, "nested")]), InputError);
    await assert.rejects(expandInputs([join(books, "*.csv")]), /No input files match/);
  });
});

Deno.test("inputs: a FIFO is refused without opening it (opening would block)", async () => {
  await withTempDir(async (dir) => {
    const fifo = join(dir, "pipe");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(made.success, "mkfifo is needed for this test");
    await assert.rejects(checkInputs([fifo]), /Cannot read input file: .*pipe: not a regular file/);
    await Deno.writeTextFile(join(dir, "ok.txt"), "fine\n");
    // From the command line: one line on stderr, exit 2, never a hang.
    for (
      const args of [
        ["ok.txt", "pipe"],
        ["/dev/null"],
        ["missing.txt"],
      ]
    ) {
      const out = await raftmr(
        ["coordinator", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", ...args],
        dir,
      ).done;
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
      assert.match(out.stderr, /Cannot read input file: .*(not a regular file|no such file)/);
    }
    await Deno.mkdir(join(dir, "empty"));
    const empty = await raftmr(
      ["coordinator", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "empty"],
      dir,
    ).done;
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /No input files in directory empty/);
    const bad = await raftmr(["coordinator", "--split-size", "huge", "ok.txt"], dir).done;
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--split-size: expected a size/);
  });
});
