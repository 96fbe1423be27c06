/**
 * Trace tests: every script in tests/raft/testdata is run through trace_runner.ts and its output
 * compared with the expected trace in the file. A deliberate change to a rule of the core shows
 * up as a readable diff; REWRITE=1 writes the new traces into the files for review in git.
 */
import assert from "node:assert/strict";
import { errorMessage } from "../../util/errors.ts";
import { parseTrace, rewriteTrace, TraceRunner } from "./trace_runner.ts";

const dir = new URL("./testdata/", import.meta.url);
const files: string[] = [];
for (const e of Deno.readDirSync(dir)) if (e.isFile && e.name.endsWith(".txt")) files.push(e.name);
files.sort();

for (const name of files) {
  Deno.test(`Trace: ${name}`, () => {
    const text = Deno.readTextFileSync(new URL(name, dir));
    const cases = parseTrace(text);
    const runner = new TraceRunner();
    // A command that fails prints its error, like any other output, so a changed rule reads
    // as a diff of the trace rather than a stack trace.
    const actual = cases.map((c) => {
      try {
        return runner.run(c.command);
      } catch (err) {
        return `error: ${errorMessage(err)}`;
      }
    });
    const expected = rewriteTrace(text, cases, cases.map((c) => c.expected));
    const got = rewriteTrace(text, cases, actual);
    if (Deno.env.get("REWRITE") === "1" && got !== text) {
      Deno.writeTextFileSync(new URL(name, dir), got);
      return;
    }
    assert.equal(got, expected, `${name}: the trace differs (REWRITE=1 updates the file)`);
  });
}

Deno.test("Trace: the runner's parser keeps commands, outputs and comments apart", () => {
  const text = "# intro\nadd-nodes 1\n----\nok\n\n# mid\nstatus 1\n----\nold\nlines\n";
  const cases = parseTrace(text);
  assert.deepEqual(cases.map((c) => [c.line, c.command, c.expected]), [
    [2, "add-nodes 1", "ok"],
    [7, "status 1", "old\nlines"],
  ]);
  assert.equal(
    rewriteTrace(text, cases, ["ok", "new"]),
    "# intro\nadd-nodes 1\n----\nok\n\n# mid\nstatus 1\n----\nnew\n",
  );
  assert.throws(() => parseTrace("status 1\nok\n"), /needs "----"/);
  assert.throws(() => new TraceRunner().run("bogus 1"), /Unknown trace command/);
});
