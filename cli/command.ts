/**
 * The command contract every `raftmr` subcommand implements, and the flag parsing they share:
 * unknown flags, missing values and bad values become a UsageError, which main.ts prints as one
 * line before exiting 2.
 */
import { parseArgs } from "node:util";
import { type HostPort, parseHostPort } from "../net/host_port.ts";
import { errorMessage } from "../util/errors.ts";

/** A bad command line: printed as one line to stderr, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag of a command, as shown in its --help. */
export interface FlagSpec {
  type: "string" | "boolean";
  /** Placeholder for the value in help text, e.g. "HOST:PORT". */
  value?: string;
  default?: string | boolean;
  description: string;
  multiple?: boolean;
}

/** What a command's run() receives after parsing. */
export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** A subcommand: its help text, its flags, and the function that runs it (returns exit code). */
export interface Command {
  name: string;
  summary: string;
  /** Usage line after "raftmr", e.g. "coordinator [flags] FILE...". */
  usage: string;
  flags: Record<string, FlagSpec>;
  /** Extra help paragraphs (examples). */
  details?: string;
  run(args: ParsedArgs): Promise<number>;
}

/** Parses argv against a command's flags; throws UsageError naming the offending flag. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, spec] of Object.entries(command.flags)) {
    // node:util rejects `multiple: undefined`, so only set it when asked for.
    options[name] = spec.multiple ? { type: spec.type, multiple: true } : { type: spec.type };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${command.name}: ${describeParseError(err)}`);
  }
  const flags: ParsedArgs["flags"] = {};
  for (const [name, spec] of Object.entries(command.flags)) {
    flags[name] = (parsed.values as Record<string, string | boolean | string[]>)[name] ??
      spec.default;
  }
  if (parsed.values.help) flags.help = true;
  return { flags, positionals: parsed.positionals };
}

function describeParseError(err: unknown): string {
  const message = errorMessage(err);
  // node:util messages are long and end with advice; keep the first sentence.
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) return `unknown flag ${unknown[1]}`;
  const missing = /Option '([^']+?)(?: <value>)?' argument missing/.exec(message);
  if (missing) return `flag ${missing[1].split(",").pop()!.trim()} needs a value`;
  const unexpected = /Option '([^']+)' does not take an argument/.exec(message);
  if (unexpected) return `flag ${unexpected[1].split(",").pop()!.trim()} takes no value`;
  return message.split(". ")[0];
}

/** Renders a command's --help text. */
export function commandHelp(command: Command): string {
  const lines = [`Usage: raftmr ${command.usage}`, "", command.summary, ""];
  const entries = Object.entries(command.flags);
  if (entries.length > 0) {
    lines.push("Flags:");
    const rows = entries.map(([name, spec]) => {
      const left = `  --${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`;
      const def = spec.default !== undefined && spec.type === "string"
        ? ` (default ${spec.default})`
        : "";
      return [left, `${spec.description}${def}`];
    });
    rows.push(["  --help", "Show this help"]);
    const width = Math.max(...rows.map(([left]) => left.length)) + 2;
    for (const [left, right] of rows) lines.push(left.padEnd(width) + right);
  }
  if (command.details) lines.push("", command.details.trimEnd());
  return lines.join("\n");
}

/** Throws UsageError naming the first positional argument, for commands that take none. */
export function rejectPositionals(args: ParsedArgs, command: string): void {
  if (args.positionals.length > 0) {
    throw new UsageError(`${command}: unexpected argument "${args.positionals[0]}"`);
  }
}

/** Reads a string flag, throwing UsageError when it is absent and required. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new UsageError(`flag --${name} needs a value`);
  return value;
}

/** Reads a required string flag. */
export function requiredFlag(args: ParsedArgs, name: string): string {
  const value = stringFlag(args, name);
  if (value === undefined || value === "") throw new UsageError(`flag --${name} is required`);
  return value;
}

/** Parses an integer flag within [min, max]. */
export function intFlag(args: ParsedArgs, name: string, min: number, max: number): number {
  const raw = requiredFlag(args, name);
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`flag --${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** Parses a duration such as "250ms", "10s", "2m" or a bare number of seconds into ms. */
export function parseDuration(raw: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!match) {
    throw new UsageError(`${what}: expected a duration like 500ms, 10s or 2m, got "${raw}"`);
  }
  const unit = match[2] ?? "s";
  const factor = unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000;
  return Math.round(Number(match[1]) * factor);
}

/** Reads a duration flag in milliseconds. */
export function durationFlag(args: ParsedArgs, name: string): number {
  return parseDuration(requiredFlag(args, name), `flag --${name}`);
}

/** Parses the "host:port" value of `what` (e.g. "flag --http"), throwing UsageError on bad input. */
export function hostPortValue(raw: string, what: string): HostPort {
  try {
    return parseHostPort(raw);
  } catch (err) {
    throw new UsageError(`${what}: ${errorMessage(err)}`);
  }
}

/** Reads a host:port flag. */
export function hostPortFlag(args: ParsedArgs, name: string): HostPort {
  return hostPortValue(requiredFlag(args, name), `flag --${name}`);
}
