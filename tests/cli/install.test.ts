/**
 * The README's MapReduce example, as a new user runs it: `deno task install` puts a `raftmr`
 * command on the PATH, and from a directory of books `raftmr coordinator pg-*.txt &` plus two
 * `raftmr worker --app wc.ts` (a bundled app by its bare name) produce the word counts.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, spawn } from "../lib/roles.ts";

Deno.test("install: the raftmr command runs the README's MapReduce example from any directory", async () => {
  await withTempDir("raftmr-install-", async (root) => {
    const install = spawn(Deno.execPath(), ["task", "--config", CONFIG, "install"], {
      env: { DENO_INSTALL_ROOT: root },
    });
    assert.equal(await install.exited, 0, install.stderr());
    const command = await Deno.readTextFile(`${root}/bin/raftmr`);
    assert.doesNotMatch(command, /--allow-all|\s-A\s/, command);

    const books = `${root}/books`;
    await Deno.mkdir(books);
    await Deno.writeTextFile(`${books}/pg-one.txt`, "the cat and the hat\nthe end\n");
    await Deno.writeTextFile(`${books}/pg-two.txt`, "a cat, a bat; the cat\n");
    const rpc = `127.0.0.1:${freePort()}`;
    const http = `127.0.0.1:${freePort()}`;
    const worker = `raftmr worker --app wc.ts --coordinator ${rpc}`;
    const job = spawn("sh", [
      "-c",
      `cd ${books} && raftmr coordinator --listen ${rpc} --http ${http} pg-*.txt & ` +
      `${worker} & ${worker}; wait`,
    ], { env: { PATH: `${root}/bin:${Deno.env.get("PATH")}` } });
    assert.equal(await job.exited, 0, job.stderr());
    const counts = new Map<string, string>();
    for await (const entry of Deno.readDir(books)) {
      if (!entry.name.startsWith("mr-out-")) continue;
      for (const line of (await Deno.readTextFile(`${books}/${entry.name}`)).split("\n")) {
        if (line === "") continue;
        const [word, count] = line.split(" ");
        counts.set(word, count);
      }
    }
    assert.deepEqual(Object.fromEntries([...counts].sort()), {
      a: "2",
      and: "1",
      bat: "1",
      cat: "3",
      end: "1",
      hat: "1",
      the: "4",
    }, job.stderr());
  });
});
