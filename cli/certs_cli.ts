/**
 * `raftmr certs`: creates a cluster's credentials (a CA, one certificate per node, a client
 * token) in a directory, for `raftmr serve --peer-cert/--peer-key/--peer-ca/--auth-token-file`
 * and `raftmr kv --ca/--token-file`. Refuses to overwrite an existing CA.
 */
import { summaryOf } from "./command_table.ts";
import {
  type Command,
  intFlag,
  type ParsedArgs,
  rejectPositionals,
  requiredFlag,
  UsageError,
} from "./command.ts";
import { credentialPaths, generateCredentials, writeToken } from "./credentials.ts";

/** The `certs` command. */
export const certsCommand: Command = {
  name: "certs",
  summary: summaryOf("certs"),
  usage: "certs --dir DIR [--nodes 3] [--hosts HOST,...] | certs --dir DIR --token-only",
  flags: {
    dir: { type: "string", value: "DIR", description: "Where to write the files (required)" },
    nodes: { type: "string", value: "N", default: "3", description: "Node certificates to make" },
    hosts: {
      type: "string",
      value: "HOST,...",
      default: "127.0.0.1,::1,localhost",
      description: "Names and IP addresses the node certificates are valid for",
    },
    days: { type: "string", value: "N", default: "825", description: "Node certificate validity" },
    "token-only": {
      type: "boolean",
      description: "Only add a new client token file (DIR/token-<time>)",
    },
  },
  details: "Writes ca.pem, ca.key (keep it offline), node-N.pem, node-N.key and token.\n" +
    "Every node certificate names all --hosts; give each node's address(es), e.g.\n" +
    "  raftmr certs --dir creds --nodes 3 --hosts 10.0.0.1,10.0.0.2,10.0.0.3,db1,db2,db3",
  run: runCerts,
};

async function runCerts(args: ParsedArgs): Promise<number> {
  rejectPositionals(args, "certs");
  const dir = requiredFlag(args, "dir");
  if (args.flags["token-only"] === true) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const path = `${dir}/token-${Date.now()}`;
    await writeToken(path);
    console.log(`Wrote ${path}; append its line to the nodes' --auth-token-file to accept it`);
    return 0;
  }
  const nodes = intFlag(args, "nodes", 1, 1000);
  const days = intFlag(args, "days", 1, 36500);
  const hosts = requiredFlag(args, "hosts").split(",").map((h) => h.trim()).filter((h) => h);
  if (hosts.length === 0) throw new UsageError("flag --hosts: give at least one host");
  const paths = credentialPaths(dir, nodes);
  if (await Deno.stat(paths.ca).then(() => true, () => false)) {
    console.error(`raftmr certs: ${paths.ca} exists: refusing to replace a cluster's CA`);
    return 1;
  }
  try {
    await generateCredentials(dir, { nodes, hosts, days });
  } catch (err) {
    console.error(`raftmr certs: ${err instanceof Error ? err.message : err}`);
    return 1;
  }
  console.log(`Wrote a CA, ${nodes} node certificates and a client token to ${dir}`);
  return 0;
}
