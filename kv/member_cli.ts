/**
 * `raftmr member list|add|promote|remove` and `raftmr leader transfer`: membership and leadership
 * over the native protocol (the peer port, the same --endpoints as `raftmr kv`). Any node takes
 * the request and forwards it to the leader; a node that cannot be reached is skipped.
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  CLIENT_SECURITY_FLAGS,
  clientSecurity,
  type PeerPortAccess,
} from "../cli/client_security.ts";
import { clientHello } from "../net/handshake.ts";
import {
  type Command,
  durationFlag,
  type FlagSpec,
  type ParsedArgs,
  requiredFlag,
  UsageError,
} from "../cli/command.ts";
import { RemoteError, RpcClient } from "../net/rpc.ts";
import { parseEndpoint } from "./client.ts";
import {
  CONFLICT_PREFIX,
  INVALID_PREFIX,
  MEMBERS_RPC_METHOD,
  type MembersRequest,
  type MembersView,
  type TransferView,
  UNAVAILABLE_PREFIX,
  validateMemberId,
  validatePeerAddr,
} from "./members_api.ts";

const COMMON_FLAGS: Record<string, FlagSpec> = {
  endpoints: {
    type: "string",
    value: "HOST:PORT,...",
    default: "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
    description: "Peer addresses of the cluster (any subset works)",
  },
  timeout: {
    type: "string",
    value: "DURATION",
    default: "10s",
    description: "Give up after this long",
  },
  json: { type: "boolean", description: "Print the answer as JSON" },
  ...CLIENT_SECURITY_FLAGS,
};

/** A refusal or a malformed request: the cluster answered, retrying elsewhere would not help. */
class Refused extends Error {}

/**
 * Sends one membership request to the first endpoint that answers; a node without a leader or
 * out of reach is skipped until the deadline. Throws Refused with the cluster's reason.
 */
export async function sendMembersRequest(
  endpoints: string[],
  request: MembersRequest,
  timeoutMs: number,
  access: Pick<PeerPortAccess, "hello" | "dial"> = { hello: clientHello() },
): Promise<MembersView | TransferView> {
  const deadline = performance.now() + timeoutMs;
  let last = "no endpoint answered";
  for (let round = 0; performance.now() < deadline; round++) {
    for (const endpoint of endpoints) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const client = new RpcClient(parseEndpoint(endpoint), {
        maxBackoffMs: 100,
        hello: access.hello,
        dial: access.dial,
      });
      try {
        return await client.call<MembersView | TransferView>(MEMBERS_RPC_METHOD, request, {
          timeoutMs: left,
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (error instanceof RemoteError) {
          if (message.startsWith(CONFLICT_PREFIX)) {
            throw new Refused(message.slice(CONFLICT_PREFIX.length).trim());
          }
          if (message.startsWith(INVALID_PREFIX)) {
            throw new Refused(message.slice(INVALID_PREFIX.length).trim());
          }
          // A write whose outcome is unknown must not be sent again blindly.
          if (!message.startsWith(UNAVAILABLE_PREFIX) && request.op !== "list") throw error;
        }
        last = `${endpoint}: ${message}`;
      } finally {
        client.close();
      }
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, 50 * (round + 1))));
  }
  throw new Error(`No node could serve the request: ${last}`);
}

/** Renders a member list as an aligned table. */
export function formatMembers(view: MembersView): string {
  const rows = [["ID", "PEER ADDRESS", "ROLE", "LEADER", "MATCH"]];
  for (const m of view.members) {
    rows.push([String(m.id), m.peerAddr, m.role, m.leader ? "yes" : "", String(m.match)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  lines.push(`configuration index ${view.configIndex}`);
  return lines.join("\n");
}

function endpointsOf(args: ParsedArgs): string[] {
  const endpoints = requiredFlag(args, "endpoints").split(",").map((e) => e.trim());
  for (const endpoint of endpoints) {
    try {
      parseEndpoint(endpoint);
    } catch (err) {
      throw new UsageError(`flag --endpoints: ${err instanceof Error ? err.message : err}`);
    }
  }
  return endpoints;
}

function usageId(name: string, raw: string | undefined, what = "ID"): number {
  if (raw === undefined) throw new UsageError(`${name}: missing ${what}`);
  try {
    return validateMemberId(raw);
  } catch {
    throw new UsageError(`${name}: ${what} must be an integer from 1 to 1000000, got "${raw}"`);
  }
}

function noMore(name: string, extra: string[]): void {
  if (extra.length > 0) throw new UsageError(`${name}: unexpected argument "${extra[0]}"`);
}

async function run(name: string, args: ParsedArgs, request: MembersRequest): Promise<number> {
  const endpoints = endpointsOf(args);
  const timeoutMs = durationFlag(args, "timeout");
  const access = await clientSecurity(args);
  try {
    const answer = await sendMembersRequest(endpoints, request, timeoutMs, access);
    if (args.flags.json === true) console.log(JSON.stringify(answer));
    else if ("members" in answer) console.log(formatMembers(answer));
    else console.log(`Node ${answer.leader} is the leader (term ${answer.term})`);
    return 0;
  } catch (error) {
    console.error(`raftmr ${name}: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

function memberCommand(
  word: string,
  usage: string,
  build: (name: string, positionals: string[], args: ParsedArgs) => MembersRequest,
  extraFlags: Record<string, FlagSpec> = {},
  details?: string,
): Command {
  const name = `member ${word}`;
  return {
    name,
    summary: summaryOf(name),
    usage: `${name} ${usage}`.trimEnd() + " [--endpoints HOST:PORT,...]",
    flags: { ...COMMON_FLAGS, ...extraFlags },
    details,
    run: (args) => run(name, args, build(name, args.positionals, args)),
  };
}

/** `raftmr member list`. */
export const memberListCommand: Command = memberCommand(
  "list",
  "",
  (name, [extra]) => {
    noMore(name, extra === undefined ? [] : [extra]);
    return { op: "list" };
  },
);

/** `raftmr member add ID=HOST:PORT [--voter]`. */
export const memberAddCommand: Command = memberCommand(
  "add",
  "ID=HOST:PORT [--voter]",
  (name, [spec, ...extra], args) => {
    noMore(name, extra);
    if (spec === undefined) throw new UsageError(`${name}: missing ID=HOST:PORT`);
    const m = /^([^=]+)=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`${name}: expected ID=HOST:PORT, got "${spec}"`);
    const id = usageId(name, m[1]);
    try {
      validatePeerAddr(m[2]);
    } catch (error) {
      throw new UsageError(`${name}: ${(error as Error).message}`);
    }
    return { op: "add", id, peerAddr: m[2], learner: args.flags.voter !== true };
  },
  { voter: { type: "boolean", description: "Add a voter at once (not advised: add a learner)" } },
  "Then start the new node with the same id and address and --join:\n" +
    "  raftmr member add 4=127.0.0.1:7004\n" +
    "  raftmr serve --id 4 --peers 1=...,2=...,3=...,4=127.0.0.1:7004 --data-dir DIR --join\n" +
    "  raftmr member promote 4     (once it has caught up)",
);

/** `raftmr member promote ID`. */
export const memberPromoteCommand: Command = memberCommand(
  "promote",
  "ID",
  (name, [id, ...extra]) => {
    noMore(name, extra);
    return { op: "promote", id: usageId(name, id) };
  },
);

/** `raftmr member remove ID`. */
export const memberRemoveCommand: Command = memberCommand(
  "remove",
  "ID",
  (name, [id, ...extra]) => {
    noMore(name, extra);
    return { op: "remove", id: usageId(name, id) };
  },
);

/** `raftmr leader transfer [ID]`. */
export const leaderTransferCommand: Command = {
  name: "leader transfer",
  summary: summaryOf("leader transfer"),
  usage: "leader transfer [ID] [--endpoints HOST:PORT,...]",
  flags: COMMON_FLAGS,
  details:
    "Returns once the new leader is in office; fails if it is not within an election timeout.",
  run: (args) => {
    const [id, ...extra] = args.positionals;
    noMore("leader transfer", extra);
    const request: MembersRequest = id === undefined
      ? { op: "transfer" }
      : { op: "transfer", to: usageId("leader transfer", id) };
    return run("leader transfer", args, request);
  },
};
