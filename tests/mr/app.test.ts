import assert from "node:assert/strict";
import { join } from "node:path";
import { type KeyValue, loadApp } from "../../mr/app.ts";
import { withTempDir } from "./helpers.ts";

async function appFrom(dir: string, source: string) {
  const path = join(dir, `app_${crypto.randomUUID()}.ts`);
  await Deno.writeTextFile(path, source + "\nexport function reduce() { return ''; }\n");
  return await loadApp(path);
}

async function streamed(
  mr: Awaited<ReturnType<typeof loadApp>>,
  contents: string,
): Promise<KeyValue[]> {
  const pairs: KeyValue[] = [];
  await mr.mapEmit("f", contents, (key, value) => void pairs.push({ key, value }));
  return pairs;
}

Deno.test("a classic app is offered in both forms with the same pairs", async () => {
  await withTempDir(async (dir) => {
    const mr = await appFrom(
      dir,
      "export function map(f, c) { return c.split(' ').map((w) => ({ key: w, value: f })); }",
    );
    const expected = [{ key: "a", value: "f" }, { key: "b", value: "f" }];
    assert.deepEqual(await mr.map("f", "a b"), expected);
    assert.deepEqual(await streamed(mr, "a b"), expected);
  });
});

Deno.test("a streaming app (sync or async) is offered in both forms with the same pairs", async () => {
  await withTempDir(async (dir) => {
    for (
      const source of [
        "export function map(f, c, emit) { for (const w of c.split(' ')) emit(w, f); }",
        "export async function map(f, c, emit) { await 0; for (const w of c.split(' ')) emit(w, f); }",
      ]
    ) {
      const mr = await appFrom(dir, source);
      const expected = [{ key: "a", value: "f" }, { key: "b", value: "f" }];
      assert.deepEqual(await mr.map("f", "a b"), expected);
      assert.deepEqual(await streamed(mr, "a b"), expected);
    }
  });
});

Deno.test("a map returning something other than pairs or nothing fails clearly", async () => {
  await withTempDir(async (dir) => {
    const bad = await appFrom(dir, "export function map() { return 42; }");
    await assert.rejects(streamed(bad, "x"), /map returned number, expected an array/);
    await assert.rejects(async () => await bad.map("f", "x"), /map returned number/);
    const badPair = await appFrom(dir, "export function map() { return [{ key: 1 }]; }");
    await assert.rejects(streamed(badPair, "x"), /invalid pair at index 0/);
  });
});
