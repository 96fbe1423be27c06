/**
 * `raftmr serve`: one Raft peer of the replicated KV store. Runs until SIGINT/SIGTERM, then
 * stops accepting, fails or finishes what is in flight, flushes storage and exits 0.
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  type Command,
  durationFlag,
  hostPortFlag,
  hostPortValue,
  intFlag,
  type ParsedArgs,
  rejectPositionals,
  requiredFlag,
  UsageError,
} from "../cli/command.ts";
import type { HostPort } from "../net/host_port.ts";
import { LOG_FLAGS, loggerFromFlags } from "../cli/log.ts";
import { sdNotify } from "../cli/sd_notify.ts";
import { stopSignal } from "../cli/signals.ts";
import { loadNodeSecurity } from "../net/security.ts";
import { parseSecurityFlags, SECURITY_FLAGS } from "./security_flags.ts";
import { KvServer } from "./server.ts";

/** Parses `1=host:port,2=host:port,...` into a map; throws UsageError on bad input. */
export function parsePeers(raw: string): Map<number, HostPort> {
  const peers = new Map<number, HostPort>();
  for (const part of raw.split(",")) {
    const match = /^\s*(\d+)=(.+)$/.exec(part);
    if (!match) throw new UsageError(`flag --peers: expected ID=HOST:PORT, got "${part}"`);
    const id = Number(match[1]);
    if (id < 1 || id > 1_000_000) {
      throw new UsageError(`flag --peers: node ids must be from 1 to 1000000, got ${id}`);
    }
    if (peers.has(id)) throw new UsageError(`flag --peers: node id ${id} is listed twice`);
    peers.set(id, hostPortValue(match[2], `flag --peers (node ${id})`));
  }
  return peers;
}

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: summaryOf("serve"),
  usage:
    "serve --id N --peers 1=HOST:PORT,2=HOST:PORT,... --data-dir DIR [--http HOST:PORT] [--join]",
  flags: {
    id: { type: "string", value: "N", description: "This node's id in --peers (required)" },
    peers: {
      type: "string",
      value: "ID=HOST:PORT,...",
      description: "Peers' Raft addresses, this node's included (required); forms a new cluster. " +
        "Once the data directory holds the cluster's configuration, membership comes from it " +
        "and --peers only supplies addresses",
    },
    join: {
      type: "boolean",
      description: "Join an existing cluster that added this node (raftmr member add): " +
        "start with no configuration and wait for the leader",
    },
    "data-dir": { type: "string", value: "DIR", description: "WAL and snapshots (required)" },
    http: {
      type: "string",
      value: "HOST:PORT",
      default: "127.0.0.1:8001",
      description: "HTTP API address",
    },
    tick: { type: "string", value: "DURATION", default: "10ms", description: "Raft tick length" },
    "election-ticks": {
      type: "string",
      value: "N",
      default: "30",
      description: "Election timeout in ticks (randomized up to 2x)",
    },
    "heartbeat-ticks": {
      type: "string",
      value: "N",
      default: "5",
      description: "Heartbeat interval in ticks",
    },
    "snapshot-entries": {
      type: "string",
      value: "N",
      default: "10000",
      description: "Snapshot after this many applied entries",
    },
    "max-key-bytes": { type: "string", value: "N", default: "1024", description: "Key limit" },
    "max-value-bytes": {
      type: "string",
      value: "N",
      default: "1048576",
      description: "Value limit",
    },
    "request-timeout": {
      type: "string",
      value: "DURATION",
      default: "5s",
      description: "How long a request waits for a leader and a commit",
    },
    ...LOG_FLAGS,
    ...SECURITY_FLAGS,
  },
  details: "Example (three terminals, or see `raftmr cluster`):\n" +
    "  raftmr serve --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\\n" +
    "    --data-dir data/node-1 --http 127.0.0.1:8001\n\n" +
    "Membership: --peers forms a new cluster. Once the data directory holds the cluster's\n" +
    "configuration (its first leader records it), membership comes from the log and snapshots:\n" +
    "--peers then only supplies addresses, and naming a node that is not a member refuses to\n" +
    "start. To add a node: raftmr member add 4=HOST:PORT, then start node 4 with --join.\n" +
    "On SIGTERM a leader hands leadership to another voter before it exits.",
  run: runServe,
};

async function runServe(args: ParsedArgs): Promise<number> {
  rejectPositionals(args, "serve");
  const id = intFlag(args, "id", 1, 1_000_000);
  const peers = parsePeers(requiredFlag(args, "peers"));
  if (!peers.has(id)) throw new UsageError(`flag --peers has no entry for --id ${id}`);
  const electionTicks = intFlag(args, "election-ticks", 2, 10_000);
  const heartbeatTicks = intFlag(args, "heartbeat-ticks", 1, 10_000);
  if (heartbeatTicks >= electionTicks) {
    throw new UsageError("flag --heartbeat-ticks must be smaller than --election-ticks");
  }
  const tickMs = durationFlag(args, "tick");
  if (tickMs < 1) throw new UsageError("flag --tick must be at least 1ms");
  const http = hostPortFlag(args, "http");
  const settings = parseSecurityFlags(args, { peer: peers.get(id)!, http });
  const log = loggerFromFlags(args, `node ${id}`).with({ node: id });
  // Installed before the server starts: a signal during start-up must not kill it mid-write.
  const stopped = stopSignal((signal, repeated) => {
    if (repeated) log.info(`Already shutting down: ${signal} ignored`, { signal });
  });
  const security = await loadNodeSecurity(settings.files);
  const server = await KvServer.start({
    id,
    peers,
    dataDir: requiredFlag(args, "data-dir"),
    http,
    raft: {
      tickMs,
      electionTicks,
      heartbeatTicks,
      snapshotEntries: intFlag(args, "snapshot-entries", 1, 1e9),
    },
    limits: {
      maxKeyBytes: intFlag(args, "max-key-bytes", 1, 64 * 1024),
      maxValueBytes: intFlag(args, "max-value-bytes", 1, 32 * 1024 * 1024),
    },
    requestTimeoutMs: durationFlag(args, "request-timeout"),
    join: args.flags.join === true,
    log,
    security,
    openPaths: settings.openPaths,
    listenerLimits: settings,
    frameBudgetBytes: settings.frameBudgetBytes,
  });
  // systemd (Type=notify): ready once the peer and HTTP ports are listening.
  const ready = await sdNotify("READY=1");
  if (ready.problem) log.warn(ready.problem);
  const signal = await stopped;
  await sdNotify("STOPPING=1");
  log(`Shutting down on ${signal}`, { signal });
  // etcd does the same on stop: a leader hands over first, so a restart costs no election.
  await server.handOverLeadership();
  await server.shutdown();
  log("Stopped");
  return 0;
}
