/**
 * `raftmr cluster`: runs a local cluster of `raftmr serve` processes, one per node, says
 * "started" once every node serves and a leader is elected, and stops them all on Ctrl-C or
 * SIGTERM. The quickest way to try raftmr.
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  type Command,
  intFlag,
  type ParsedArgs,
  rejectPositionals,
  requiredFlag,
} from "../cli/command.ts";
import { LOG_FLAGS, logFlagArgs } from "../cli/log.ts";
import { servePermissions } from "../cli/permissions.ts";
import { credentialPaths, generateCredentials } from "../cli/credentials.ts";
import { selfCommand } from "../cli/self.ts";
import { stopSignal } from "../cli/signals.ts";
import { firstTaken } from "../net/probe.ts";
import { waitForClusterReady } from "./cluster_ready.ts";

/** Where a node reads its open-file limit, which its default connection caps come from. */
const PROC_LIMITS = "/proc/self/limits";

/** The `cluster` command. */
export const clusterCommand: Command = {
  name: "cluster",
  summary: summaryOf("cluster"),
  usage: "cluster [--nodes 3] [--base-port 7001] [--http-base-port 8001] [--data-dir ./data]",
  flags: {
    nodes: { type: "string", value: "N", default: "3", description: "Number of nodes (1-9)" },
    "base-port": {
      type: "string",
      value: "PORT",
      default: "7001",
      description: "Peer port of node 1; node i uses base+i-1",
    },
    "http-base-port": {
      type: "string",
      value: "PORT",
      default: "8001",
      description: "HTTP port of node 1; node i uses base+i-1",
    },
    "data-dir": {
      type: "string",
      value: "DIR",
      default: "./data",
      description: "Parent directory; node i keeps its data in DIR/node-i",
    },
    host: { type: "string", value: "HOST", default: "127.0.0.1", description: "Address to bind" },
    insecure: {
      type: "boolean",
      description: "No credentials: plain peer connections and no client tokens",
    },
    ...LOG_FLAGS,
  },
  details: 'Prints "Started" once every node serves and a leader is elected, then a command to ' +
    "try.\nExits 1 when a node cannot start (a port in use, a damaged data directory) or dies.\n" +
    "Peers use mutual TLS and clients a token: the credentials (CA, node certificates, token)\n" +
    "are made with openssl on first use in DATA-DIR/credentials and reused afterwards.\n\n" +
    "Example:\n  raftmr cluster --nodes 3\n" +
    "  raftmr kv put hello world      # finds data/credentials by itself\n" +
    '  curl -H "Authorization: Bearer $(cat data/credentials/token)" ' +
    "http://127.0.0.1:8001/v1/kv/hello",
  run: runCluster,
};

async function runCluster(args: ParsedArgs): Promise<number> {
  rejectPositionals(args, "cluster");
  const nodes = intFlag(args, "nodes", 1, 9);
  const basePort = intFlag(args, "base-port", 1, 65535 - nodes);
  const httpBasePort = intFlag(args, "http-base-port", 1, 65535 - nodes);
  const dataDir = requiredFlag(args, "data-dir");
  const host = requiredFlag(args, "host");
  const ids = Array.from({ length: nodes }, (_, i) => i + 1);
  const peerAddress = (id: number) => `${host}:${basePort + id - 1}`;
  const httpAddress = (id: number) => `${host}:${httpBasePort + id - 1}`;
  const peers = ids.map((id) => `${id}=${peerAddress(id)}`).join(",");

  // Checked before anything starts, so the answer names the port rather than a node's log line.
  const taken = firstTaken([
    ...ids.map((id) => ({
      hostname: host,
      port: basePort + id - 1,
      what: `node ${id}'s peer port`,
    })),
    ...ids.map((id) => ({
      hostname: host,
      port: httpBasePort + id - 1,
      what: `node ${id}'s HTTP port`,
    })),
  ]);
  if (taken) {
    console.error(`cluster: cannot start: ${taken}`);
    return 1;
  }

  const credentials = args.flags.insecure === true
    ? undefined
    : await clusterCredentials(`${dataDir}/credentials`, nodes, host);
  const security = (id: number) =>
    credentials
      ? [
        "--peer-cert",
        credentials.nodes[id - 1].cert,
        "--peer-key",
        credentials.nodes[id - 1].key,
        "--peer-ca",
        credentials.ca,
        "--auth-token-file",
        credentials.token,
      ]
      : ["--insecure"];

  // Installed before the nodes start: the terminal's Ctrl-C reaches them too, and a second
  // signal to this process must not kill it while it waits for them.
  let stopping = false;
  const stopped = stopSignal().then(() => {
    stopping = true;
  });

  const children = ids.map((id) => {
    const dir = `${dataDir}/node-${id}`;
    const { program, args: argv } = selfCommand([
      "serve",
      "--id",
      String(id),
      "--peers",
      peers,
      "--data-dir",
      dir,
      "--http",
      httpAddress(id),
      ...security(id),
      ...logFlagArgs(args),
    ], servePermissions(dir, undefined, [...(credentials ? [credentials.dir] : []), PROC_LIMITS]));
    const child = new Deno.Command(program, { args: argv, stdin: "null" }).spawn();
    console.log(`node ${id}: peer ${peerAddress(id)}, http http://${httpAddress(id)}`);
    return { id, child, status: undefined as Deno.CommandStatus | undefined };
  });
  const stopAll = () => {
    for (const { child } of children) {
      try {
        // A node that already heard the terminal's SIGINT ignores this one.
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
  };
  let failed = false;
  const exits = Promise.all(children.map(async (entry) => {
    entry.status = await entry.child.status;
    if (!entry.status.success && !stopping) {
      failed = true;
      console.error(`cluster: node ${entry.id} exited with status ${entry.status.code}`);
      // One node down at start-up (or later) stops the whole command: a partial cluster
      // left running would hide the reason among its logs.
      stopping = true;
      stopAll();
    }
  }));

  const token = credentials ? (await Deno.readTextFile(credentials.token)).trim() : undefined;
  const ready = await waitForClusterReady(
    ids.map((id) => `http://${httpAddress(id)}`),
    () => stopping,
    token ? { authorization: `Bearer ${token}` } : {},
  );
  if (ready !== undefined && !stopping) {
    console.log(
      `Started ${nodes} node${nodes === 1 ? "" : "s"}: node ${ready} leads; press Ctrl-C to stop`,
    );
    // `raftmr kv` finds data/credentials by itself; another --data-dir must be named.
    const auth = credentials && credentials.dir !== "data/credentials" &&
        credentials.dir !== "./data/credentials"
      ? ` --credentials ${credentials.dir}`
      : "";
    console.log(
      `Try: ${tryCommand(host, basePort, nodes)}${auth}   (dashboard: http://${httpAddress(1)}/)`,
    );
    if (credentials) {
      console.log(
        `Peers use mutual TLS (CA ${credentials.ca}); clients send the token in ` +
          `${credentials.token} (HTTP: Authorization: Bearer TOKEN)`,
      );
    }
  }
  await Promise.race([stopped, exits]);
  stopping = true;
  stopAll();
  await exits;
  for (const { id, status } of children) {
    if (status && !status.success && !failed) {
      failed = true;
      console.error(`cluster: node ${id} exited with status ${status.code}`);
    }
  }
  if (!failed) console.log(`Stopped ${nodes} node${nodes === 1 ? "" : "s"}`);
  return failed ? 1 : 0;
}

/** The kv command that reaches this cluster (the default endpoints need no flag). */
function tryCommand(host: string, basePort: number, nodes: number): string {
  const endpoints = Array.from({ length: nodes }, (_, i) => `${host}:${basePort + i}`).join(",");
  const standard = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
  return `raftmr kv put hello world${endpoints === standard ? "" : ` --endpoints ${endpoints}`}`;
}

/**
 * The credentials of a local cluster: reused when DIR already holds a complete set for these
 * nodes (restarting the cluster keeps the token users were given), created otherwise.
 */
async function clusterCredentials(dir: string, nodes: number, host: string) {
  const paths = credentialPaths(dir, nodes);
  const files = [paths.ca, paths.token, ...paths.nodes.flatMap((n) => [n.cert, n.key])];
  const present = await Promise.all(
    files.map((file) => Deno.stat(file).then(() => true, () => false)),
  );
  if (present.every((p) => p)) return paths;
  const hosts = [...new Set([host, "127.0.0.1", "::1", "localhost"])];
  return await generateCredentials(dir, { nodes, hosts });
}
