import assert from "node:assert/strict";
import { join } from "node:path";
import { fsyncDir, writeFileAtomic } from "../../persist/atomic_file.ts";

Deno.test("writeFileAtomic replaces contents and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "out.txt");
    await writeFileAtomic(path, "first");
    assert.equal(await Deno.readTextFile(path), "first");
    await writeFileAtomic(path, new Uint8Array([104, 105]));
    assert.equal(await Deno.readTextFile(path), "hi");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["out.txt"]);
    await fsyncDir(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic fails cleanly when the directory is missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(writeFileAtomic(join(dir, "nope", "x"), "data"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
