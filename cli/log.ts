/**
 * The process logger of every long-running role: one line per event on stderr, as text or as
 * JSON (`--log-format`), filtered by `--log-level`.
 *
 * JSON lines carry `ts`, `level`, `msg` and the event's fields, the shape etcd's zap logger writes,
 * so one collector parses both. Under journald (`$JOURNAL_STREAM` set, sd-daemon(3)) text lines
 * start with a `<N>` syslog priority instead of a timestamp: journald stamps each line itself and
 * reads the prefix as the entry's priority, so `journalctl -p warning` works.
 *
 * Text lines are `TS [LEVEL] NAME: MSG` (LEVEL only for warn and error; `<N>NAME: MSG` under
 * journald): the message is complete
 * on its own and the fields appear only in JSON.
 *
 * A logger is also a plain `(line: string) => void`, the type every module's `log` option had
 * before levels and fields existed, so those modules keep working unchanged; a call site adds
 * fields (and a level under the reserved key `level`) only where it has them.
 */
import type { FlagSpec, ParsedArgs } from "./command.ts";
import { UsageError } from "./command.ts";

/** Severity of a log line, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The event's fields; `level` (a LogLevel) is reserved and sets the line's severity. */
export type LogFields = Record<string, unknown>;

/** A log call: a message and the event's fields. Assignable to `(line: string) => void`. */
export type LogFn = (msg: string, fields?: LogFields) => void;

/** A logger: calling it logs at info (or at `fields.level`); the methods fix the level. */
export interface Logger extends LogFn {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger that adds `fields` to every line (e.g. the node id). */
  with(fields: LogFields): Logger;
}

/** How lines are written. */
export interface LoggerOptions {
  format: "text" | "json";
  level: LogLevel;
  /** Text lines get a `<N>` priority prefix and no timestamp (default: `$JOURNAL_STREAM` is set). */
  journald?: boolean;
  /** Prefix of text lines before the message, e.g. "node 1" (JSON lines carry the fields). */
  name?: string;
  /** Where lines go (default: stderr); tests capture them here. */
  write?: (line: string) => void;
  /** The clock (default: Date.now). */
  now?: () => number;
}

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
/** syslog priorities (RFC 5424 §6.2.1), what journald reads from a `<N>` prefix. */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** The flags every long-running role takes, spread into its Command's flags. */
export const LOG_FLAGS: Record<string, FlagSpec> = {
  "log-format": {
    type: "string",
    value: "text|json",
    default: "text",
    description: "Log lines as text or as JSON objects (ts, level, msg, fields)",
  },
  "log-level": {
    type: "string",
    value: "LEVEL",
    default: "info",
    description: "Least severe level logged: debug, info, warn or error",
  },
};

/** Builds the logger the parsed --log-format and --log-level flags ask for. */
export function loggerFromFlags(args: ParsedArgs, name?: string): Logger {
  const format = args.flags["log-format"] ?? "text";
  const level = args.flags["log-level"] ?? "info";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`flag --log-format: expected text or json, got "${format}"`);
  }
  if (typeof level !== "string" || !LEVELS.includes(level as LogLevel)) {
    throw new UsageError(`flag --log-level: expected ${LEVELS.join(", ")}, got "${level}"`);
  }
  return createLogger({ format, level: level as LogLevel, name });
}

/** The log flags to hand to a child process so it logs as its parent does. */
export function logFlagArgs(args: ParsedArgs): string[] {
  const out: string[] = [];
  for (const name of Object.keys(LOG_FLAGS)) {
    const value = args.flags[name];
    if (typeof value === "string") out.push(`--${name}`, value);
  }
  return out;
}

/** Creates a logger; see LoggerOptions for what each option changes. */
export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const journald = options.journald ?? underJournald();
  const write = options.write ?? writeStderr;
  const now = options.now ?? Date.now;
  const min = LEVELS.indexOf(options.level);
  const emit = (fallback: LogLevel, msg: string, fields?: LogFields) => {
    const { level: asked, ...rest } = fields ?? {};
    const level = LEVELS.includes(asked as LogLevel) ? asked as LogLevel : fallback;
    if (LEVELS.indexOf(level) < min) return;
    const all = { ...bound, ...rest };
    if (options.format === "json") {
      write(JSON.stringify({ ts: new Date(now()).toISOString(), level, msg, ...jsonSafe(all) }));
      return;
    }
    const head = journald ? `<${PRIORITY[level]}>` : `${new Date(now()).toISOString()} `;
    // journald shows the priority itself; elsewhere warn and error say so in the line.
    const tag = journald || level === "info" ? "" : `${level.toUpperCase()} `;
    const name = options.name ? `${options.name}: ` : "";
    // A text line is for people: the message says it all (call sites keep it self-contained),
    // the fields are for machines and go into JSON lines only.
    write(`${head}${tag}${name}${msg}`);
  };
  const logger = ((msg: string, fields?: LogFields) => emit("info", msg, fields)) as Logger;
  for (const level of LEVELS) {
    logger[level] = (msg, fields) => emit(level, msg, { ...fields, level });
  }
  logger.with = (fields) => createLogger(options, { ...bound, ...fields });
  return logger;
}

/** Whether stderr is connected to journald (sd-daemon(3): `$JOURNAL_STREAM` is set). */
function underJournald(): boolean {
  try {
    return (Deno.env.get("JOURNAL_STREAM") ?? "") !== "";
  } catch {
    // No --allow-env for it: a process that may not read its environment logs plain text.
    return false;
  }
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  // One write per line, so lines from concurrent tasks never interleave.
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function jsonSafe(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error ? value.message : value;
  }
  return out;
}
