/**
 * `raftmr cluster`: runs a local cluster of `raftmr serve` processes, one per node, prints their
 * endpoints, and stops them all on Ctrl-C or SIGTERM. The quickest way to try raftmr.
 */
import {
  type Command,
  intFlag,
  type ParsedArgs,
  requiredFlag,
  UsageError,
} from "../cli/command.ts";
import { selfCommand } from "../cli/self.ts";

/** The `cluster` command. */
export const clusterCommand: Command = {
  name: "cluster",
  summary: "Run a local cluster of serve processes until Ctrl-C",
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
  },
  details: "Example:\n  raftmr cluster --nodes 3\n  curl -X PUT --data-binary hello " +
    "http://127.0.0.1:8001/v1/kv/greeting",
  run: runCluster,
};

async function runCluster(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 0) {
    throw new UsageError(`cluster: unexpected argument "${args.positionals[0]}"`);
  }
  const nodes = intFlag(args, "nodes", 1, 9);
  const basePort = intFlag(args, "base-port", 1, 65535 - nodes);
  const httpBasePort = intFlag(args, "http-base-port", 1, 65535 - nodes);
  const dataDir = requiredFlag(args, "data-dir");
  const host = requiredFlag(args, "host");
  const ids = Array.from({ length: nodes }, (_, i) => i + 1);
  const peers = ids.map((id) => `${id}=${host}:${basePort + id - 1}`).join(",");

  const children = ids.map((id) => {
    const httpAddress = `${host}:${httpBasePort + id - 1}`;
    const { program, args: argv } = selfCommand([
      "serve",
      "--id",
      String(id),
      "--peers",
      peers,
      "--data-dir",
      `${dataDir}/node-${id}`,
      "--http",
      httpAddress,
    ]);
    const child = new Deno.Command(program, { args: argv, stdin: "null" }).spawn();
    console.log(`node ${id}: peer ${host}:${basePort + id - 1}, http http://${httpAddress}`);
    return { id, child };
  });
  console.log(`Started ${nodes} nodes; press Ctrl-C to stop them`);

  const stop = () => {
    for (const { child } of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  let failed = false;
  await Promise.all(children.map(async ({ id, child }) => {
    const status = await child.status;
    if (!status.success && status.signal !== "SIGTERM") {
      failed = true;
      console.error(`node ${id} exited with status ${status.code}`);
    }
  }));
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return failed ? 1 : 0;
}
