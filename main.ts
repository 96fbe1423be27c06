/**
 * raftmr: a Raft-replicated key-value daemon and a MapReduce engine in one program.
 * This is the composition root: it picks the subcommand, parses its flags and runs it.
 */
import { commandHelp, parseCommandArgs, UsageError } from "./cli/command.ts";
import { COMMAND_TABLE as COMMANDS, type CommandEntry } from "./cli/command_table.ts";
import denoConfig from "./deno.json" with { type: "json" };
import { dropPermissions, permissionMessage } from "./cli/permissions.ts";
import { errorMessage } from "./util/errors.ts";

/** The program version, from deno.json. */
export const VERSION: string = denoConfig.version;

function programHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 8) + 4;
  return [
    "raftmr: a Raft-replicated key-value store and a MapReduce engine",
    "",
    "Usage: raftmr <command> [flags]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    "",
    "Flags:",
    "  --help      Show this help (also: raftmr <command> --help)",
    "  --version   Print the version",
  ].join("\n");
}

/** Finds the command named by the longest matching prefix of argv ("mr run" before "mr"). */
function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(" ");
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry) return { entry, rest: argv.slice(words) };
  }
  return undefined;
}

/** Runs the program with the given arguments and returns the exit code. */
export async function runMain(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === undefined) {
    console.error("raftmr: missing command (see raftmr --help)");
    return 2;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(programHelp());
    return 0;
  }
  if (first === "--version" || first === "-V") {
    console.log(`raftmr ${VERSION}`);
    return 0;
  }
  const found = findCommand(argv);
  try {
    if (!found) {
      // A group word such as "mr": list its commands rather than calling it unknown.
      const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
      if (group.length > 0 && (argv.length === 1 || argv[1] === "--help")) {
        const names = group.map((c) => `raftmr ${c.name}`).join(", ");
        if (argv[1] === "--help") {
          console.log(group.map((c) => `raftmr ${c.name}: ${c.summary}`).join("\n"));
          return 0;
        }
        throw new UsageError(`"${first}" needs a subcommand: ${names}`);
      }
      const known = COMMANDS.map((c) => c.name).join(", ");
      throw new UsageError(`unknown command "${first}" (commands: ${known}; see raftmr --help)`);
    }
    // Only now the command's own modules: the rest of the program is never loaded.
    const command = await found.entry.load();
    const args = parseCommandArgs(command, found.rest);
    if (args.flags.help) {
      console.log(commandHelp(command));
      return 0;
    }
    dropPermissions(command.name);
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`raftmr: ${err.message}`);
      return 2;
    }
    if (err instanceof Deno.errors.NotCapable) {
      // A configuration error, like a bad flag: exit 2, which systemd does not restart.
      console.error(`raftmr: ${permissionMessage(found?.entry.name, err)}`);
      return 2;
    }
    throw err;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await runMain(Deno.args));
  } catch (err) {
    console.error(`raftmr: ${errorMessage(err)}`);
    Deno.exit(1);
  }
}
