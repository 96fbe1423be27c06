/**
 * How a standalone coordinator (`raftmr coordinator`, `mr run`) knows its workers: the worker
 * presents a token in the handshake (net/handshake.ts, role "client") before any RPC frame is
 * dispatched, so a stranger on the network gets no task, no job token and no say in the job.
 *
 * The start-up rule is the one `raftmr serve` follows (kv/security_flags.ts): without a token, a
 * coordinator on a loopback address runs (a local trial) and says so once; on any other address it
 * refuses to start unless --insecure says this is meant. A refusal rather than a warning because
 * whoever reaches the port can ask for the job's data token, read every split and commit forged
 * reduce outputs, and a warning scrolls by in a journal nobody reads.
 */
import { type FlagSpec, type ParsedArgs, stringFlag, UsageError } from "../cli/command.ts";
import { isLoopback, readTokens } from "../net/security.ts";
import { errorMessage } from "../util/errors.ts";
import { randomHex } from "../util/random_hex.ts";

/** The coordinator's authentication flags, merged into its flag specs. */
export const COORDINATOR_AUTH_FLAGS: Record<string, FlagSpec> = {
  "token-file": {
    type: "string",
    value: "FILE",
    description: "Worker tokens, one per line: a worker must present one (worker --token-file)",
  },
  insecure: {
    type: "boolean",
    description: "Allow a non-loopback --listen without --token-file",
  },
};

/**
 * The coordinator's accepted tokens from --token-file, or undefined for an open port; throws
 * UsageError for an unreadable file, or for no token on a non-loopback address without --insecure.
 */
export async function coordinatorTokens(
  args: ParsedArgs,
  listen: { hostname: string },
): Promise<string[] | undefined> {
  const file = stringFlag(args, "token-file");
  if (file === undefined) {
    if (!isLoopback(listen.hostname) && args.flags.insecure !== true) {
      throw new UsageError(
        `coordinator: address ${listen.hostname} is reachable from the network: give ` +
          "--token-file (see `raftmr certs --token-only`), or --insecure",
      );
    }
    return undefined;
  }
  try {
    return await readTokens(file);
  } catch (err) {
    throw new UsageError(`coordinator: ${errorMessage(err)}`);
  }
}

/**
 * The token a worker presents to its coordinator (the first of --token-file), or undefined;
 * --ca and --credentials belong to --cluster (the coordinator's port has no TLS).
 */
export async function workerToken(args: ParsedArgs): Promise<string | undefined> {
  for (const flag of ["ca", "credentials"]) {
    if (args.flags[flag] !== undefined) {
      throw new UsageError(
        `worker: flag --${flag} is for --cluster (a coordinator's port has no TLS)`,
      );
    }
  }
  const file = stringFlag(args, "token-file");
  if (file === undefined) return undefined;
  try {
    return (await readTokens(file))[0];
  } catch (err) {
    throw new UsageError(`worker: ${errorMessage(err)}`);
  }
}

/** A fresh random token (32 bytes as hex) for one `mr run` job. */
export function newJobToken(): string {
  return randomHex(32);
}

/** Writes `token` to `path`, readable by this user only (the workers read it at start). */
export async function writeTokenFile(path: string, token: string): Promise<void> {
  await Deno.writeTextFile(path, `${token}\n`, { mode: 0o600, createNew: true });
}
