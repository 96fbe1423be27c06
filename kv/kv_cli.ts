/**
 * `raftmr kv`: a command-line client over the native TCP protocol. It finds the leader itself,
 * retries on another node when one is down, and reuses its (client id, sequence number) on every
 * retry so a write is applied once.
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  type Command,
  durationFlag,
  type ParsedArgs,
  requiredFlag,
  UsageError,
} from "../cli/command.ts";
import { DeadlineExceededError, KvClient, KvRequestError, parseEndpoint } from "./client.ts";
import type { KvErrorCode } from "./service.ts";
import { errorMessage } from "../util/errors.ts";
import { probeEndpoints } from "../net/probe.ts";
import { CLIENT_SECURITY_FLAGS, clientSecurity } from "../cli/client_security.ts";

const OPS = ["get", "put", "append", "del", "cas"];

/**
 * The exit status of each failure reason, decided here once: 1 when the cluster said no (a
 * missing key, a failed comparison, a refused request), 2 for a bad command line, 3 when it
 * gave no answer: no node reachable, or none answered in time (nothing happened, or a write's
 * outcome is unknown: retry it).
 */
const EXIT_STATUS: Readonly<Record<KvErrorCode, number>> = Object.freeze({
  invalid: 1,
  too_large: 1,
  stale: 1,
  unavailable: 3,
  timeout: 3,
});

function exitStatus(error: unknown): number {
  if (error instanceof DeadlineExceededError) return EXIT_STATUS.timeout;
  if (error instanceof KvRequestError && error.code !== undefined) return EXIT_STATUS[error.code];
  return 1;
}

/** How long the up-front reachability check waits for a connection before going ahead anyway. */
const PROBE_MS = 1000;

/** The failure as one line after "raftmr kv OP: ", without repeating the operation. */
function failureText(err: unknown, op: string, endpoints: string[], timeoutMs: number): string {
  if (err instanceof DeadlineExceededError) {
    const unknown = op === "get" ? "" : " (the write's outcome is unknown)";
    const last = err.lastError ? `; last error: ${err.lastError.message}` : "";
    return `No answer from ${endpoints.join(", ")} within ${timeoutMs} ms${unknown}${last}`;
  }
  return errorMessage(err);
}

/** The `kv` command. */
export const kvCommand: Command = {
  name: "kv",
  summary: summaryOf("kv"),
  usage: "kv get|put|append|del|cas KEY [VALUE] [--endpoints HOST:PORT,...]",
  flags: {
    endpoints: {
      type: "string",
      value: "HOST:PORT,...",
      default: "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
      description: "Peer addresses of the cluster (any subset works)",
    },
    expect: { type: "string", value: "VALUE", description: "cas: the value the key must hold" },
    absent: { type: "boolean", description: "cas: the key must not exist" },
    stale: { type: "boolean", description: "get: read the node's local state" },
    ...CLIENT_SECURITY_FLAGS,
    timeout: {
      type: "string",
      value: "DURATION",
      default: "10s",
      description: "Give up after this long",
    },
  },
  details: "Examples:\n" +
    "  raftmr kv put greeting hello\n" +
    "  raftmr kv get greeting\n" +
    "  raftmr kv append greeting ', world'\n" +
    "  raftmr kv cas greeting 'hi' --expect 'hello, world'\n" +
    "  raftmr kv cas lock me --absent\n" +
    "  raftmr kv del greeting\n" +
    "  raftmr kv get greeting --ca /etc/raftmr/tls/ca.pem --token-file /etc/raftmr/tls/token\n" +
    "Exit status: 0 done; 1 the key is absent (get, del), the comparison failed (cas) or the\n" +
    "cluster refused the request; 2 a bad command line; 3 the cluster is unavailable: no\n" +
    "endpoint accepts connections (reported at once), or no answer within --timeout (a\n" +
    "write's outcome is then unknown).",
  run: runKv,
};

async function runKv(args: ParsedArgs): Promise<number> {
  const [op, key, value, ...extra] = args.positionals;
  if (!op || !OPS.includes(op)) {
    throw new UsageError(`kv: expected an operation (${OPS.join(", ")}), got "${op ?? ""}"`);
  }
  if (key === undefined) throw new UsageError(`kv ${op}: missing KEY`);
  const needsValue = op === "put" || op === "append" || op === "cas";
  if (needsValue && value === undefined) throw new UsageError(`kv ${op}: missing VALUE`);
  if ((!needsValue && value !== undefined) || extra.length > 0) {
    throw new UsageError(`kv ${op}: unexpected argument "${needsValue ? extra[0] : value}"`);
  }
  if (op === "cas" && (args.flags.expect === undefined) === (args.flags.absent !== true)) {
    throw new UsageError("kv cas: give exactly one of --expect VALUE or --absent");
  }
  const endpoints = requiredFlag(args, "endpoints").split(",").map((e) => e.trim());
  for (const endpoint of endpoints) {
    try {
      parseEndpoint(endpoint);
    } catch (err) {
      throw new UsageError(`flag --endpoints: ${errorMessage(err)}`);
    }
  }
  const { token, ca } = await clientSecurity(args);
  const timeoutMs = durationFlag(args, "timeout");
  // Nothing listening anywhere (no cluster started, or the wrong ports) is known at once:
  // say so rather than retry until the deadline.
  const probes = await probeEndpoints(
    endpoints.map((endpoint) => ({ endpoint, ...parseEndpoint(endpoint) })),
    Math.min(PROBE_MS, timeoutMs),
  );
  if (probes.every((p) => p.outcome === "refused")) {
    console.error(
      `raftmr kv ${op}: No node reachable: connection refused at ${endpoints.join(", ")}; ` +
        "start a local cluster with `raftmr cluster`, or name the nodes with --endpoints",
    );
    return EXIT_STATUS.unavailable;
  }
  const client = new KvClient(endpoints, { timeoutMs, token, ca });
  try {
    switch (op) {
      case "get": {
        const { value: found } = await client.get(key, { stale: args.flags.stale === true });
        if (found === null) {
          console.error(`Key not found: ${key}`);
          return 1;
        }
        await Deno.stdout.write(found);
        // A terminal's prompt must not start on the value's last line; a pipe gets the bytes.
        if (Deno.stdout.isTerminal() && found.at(-1) !== 0x0a) console.log();
        return 0;
      }
      case "put":
      case "append": {
        const { index } = await client[op](key, value!);
        console.log(`OK (index ${index})`);
        return 0;
      }
      case "del": {
        const { existed, index } = await client.del(key);
        console.log(existed ? `Deleted (index ${index})` : `Key not found: ${key}`);
        return existed ? 0 : 1;
      }
      default: {
        const expect = args.flags.absent === true ? null : String(args.flags.expect);
        const result = await client.cas(key, expect, value!);
        if (result.ok) {
          console.log(`OK (index ${result.index})`);
          return 0;
        }
        const current = result.current === null
          ? "absent"
          : `"${new TextDecoder().decode(result.current)}"`;
        console.error(`Compare failed: the current value is ${current}`);
        return 1;
      }
    }
  } catch (err) {
    console.error(`raftmr kv ${op}: ${failureText(err, op, endpoints, timeoutMs)}`);
    return exitStatus(err);
  } finally {
    client.close();
  }
}
