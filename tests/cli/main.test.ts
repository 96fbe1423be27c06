import assert from "node:assert/strict";
import { COMMAND_TABLE } from "../../cli/command_table.ts";
import { runScript } from "../lib/run.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const COMMANDS = COMMAND_TABLE.map((entry) => entry.name);

const raftmr = (...args: string[]) => runScript(MAIN, args);

Deno.test("cli: --help lists every command, and every command has its own --help", async () => {
  const top = await raftmr("--help");
  assert.equal(top.code, 0);
  for (const name of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${name} `, "m"));
  for (const name of COMMANDS) {
    const result = await raftmr(...name.split(" "), "--help");
    assert.equal(result.code, 0, `${name} --help: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^Usage: raftmr ${name}`, "m"));
    assert.match(result.stdout, /--help/);
  }
});

Deno.test("cli: each entry of the command table loads the command of its name and summary", async () => {
  assert.ok(COMMANDS.includes("worker") && COMMANDS.includes("mr run"));
  for (const entry of COMMAND_TABLE) {
    const command = await entry.load();
    assert.equal(command.name, entry.name);
    assert.equal(command.summary, entry.summary);
    assert.equal(typeof command.run, "function");
  }
});

Deno.test("cli: --version prints the version from deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const result = await raftmr("--version");
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), `raftmr ${config.version}`);
});

Deno.test("cli: bad command lines print one clear line to stderr and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /unknown command "frobnicate"/],
    [["serve", "--bogus"], /serve: unknown flag --bogus/],
    [["coordinator", "--reduce"], /flag --reduce needs a value/],
    [["coordinator", "--reduce", "zero", "a.txt"], /--reduce/],
    [["worker", "--coordinator", "nohost", "--app", "x.ts"], /expected HOST:PORT/],
    [
      ["serve", "--id", "1", "--peers", "1=127.0.0.1:7001", "--data-dir", "d", "--tick", "soon"],
      /duration/,
    ],
    [["kv", "put", "key"], /missing VALUE/],
    [["kv", "jump", "key"], /expected an operation/],
    [[], /missing command/],
    [["mr"], /"mr" needs a subcommand: raftmr mr run/],
    [["cluster", "extra"], /cluster: unexpected argument "extra"/],
    [["serve", "stray", "--id", "1"], /serve: unexpected argument "stray"/],
  ];
  for (const [args, message] of cases) {
    const result = await raftmr(...args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")} printed: ${result.stderr}`);
    assert.match(lines[0], /^raftmr: /);
    assert.match(lines[0], message);
  }
});

Deno.test("cli: a command group lists its commands", async () => {
  const help = await raftmr("mr", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /raftmr mr run: /);
});
