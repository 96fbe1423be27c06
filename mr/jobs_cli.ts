/**
 * The cluster job commands: `raftmr mr submit|status|list|cancel|wait`, and the `--cluster` form
 * of `raftmr worker`. The client commands talk to any peer's native port (method mrjobs.client,
 * answered exactly as the HTTP API answers), moving to the next peer when one is unreachable or
 * has no leader. Exit status: 0 ok, 1 the cluster refused or the job failed or was cancelled,
 * 2 a bad command line, 3 no peer answered in time.
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  CLIENT_SECURITY_FLAGS,
  clientSecurity,
  type PeerPortAccess,
} from "../cli/client_security.ts";
import { isAbsolute, resolve } from "node:path";
import {
  type Command,
  durationFlag,
  hostPortValue,
  intFlag,
  type ParsedArgs,
  rejectPositionals,
  requiredFlag,
  stringFlag,
  UsageError,
} from "../cli/command.ts";
import { ConnectionLostError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import { runClusterWorker } from "./cluster_worker.ts";
import { newWorkerStatus } from "./worker.ts";
import { serveWorkerHttp } from "./worker_http.ts";
import { JOBS_CLIENT } from "./job_rpc.ts";
import { checkOutputDir, inputSplits } from "./job_submit.ts";
import type { JobView } from "./job_view.ts";
import { parseSize } from "./splits.ts";
import { resolveAppPath } from "./app.ts";
import { errorMessage } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";

const DEFAULT_CLUSTER = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
/** How long one client command keeps trying peers before exiting 3. */
const CLIENT_DEADLINE_MS = 30_000;

const CLUSTER_FLAG = {
  type: "string" as const,
  value: "ADDRS",
  default: DEFAULT_CLUSTER,
  description: "The peers' native addresses, comma-separated (any subset works)",
};

/** No peer answered before the deadline (exit 3). */
class NoAnswerError extends Error {}

/** The peers to call and how to pass their handshake (token, CA). */
interface ClusterTarget {
  addresses: string[];
  access: PeerPortAccess;
}

async function clusterTarget(args: ParsedArgs): Promise<ClusterTarget> {
  const raw = stringFlag(args, "cluster") ?? DEFAULT_CLUSTER;
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (list.length === 0) throw new UsageError("flag --cluster: expected HOST:PORT,...");
  for (const address of list) hostPortValue(address, "flag --cluster");
  return { addresses: list, access: await clientSecurity(args) };
}

/** Calls mrjobs.client on the first peer that answers; returns `{status, body}`. */
async function clientCall(
  cluster: ClusterTarget,
  params: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + CLIENT_DEADLINE_MS;
  let last = "no peer tried";
  for (let i = 0; Date.now() < deadline; i++) {
    const addresses = cluster.addresses;
    const address = hostPortValue(addresses[i % addresses.length], "flag --cluster");
    const client = new RpcClient(address, {
      timeoutMs: 15_000,
      hello: cluster.access.hello,
      dial: cluster.access.dial,
    });
    try {
      const reply = await client.call(JOBS_CLIENT, params) as {
        status: number;
        body: Record<string, unknown>;
      };
      // 503: that peer knows no leader now; another may.
      if (reply.status !== 503) return reply;
      last = String(reply.body?.error ?? "unavailable");
    } catch (err) {
      if (!(err instanceof ConnectionLostError || err instanceof RpcTimeoutError)) throw err;
      last = errorMessage(err);
    } finally {
      client.close();
    }
    await sleep(Math.min(500, 50 * (i + 1)));
  }
  throw new NoAnswerError(`No peer answered: ${last}`);
}

/** Runs a client command body, mapping failures to exit codes (1 refused, 3 no answer). */
async function clientCommand(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    console.error(`raftmr ${name}: ${errorMessage(err)}`);
    return err instanceof NoAnswerError ? 3 : 1;
  }
}

function refused(name: string, reply: { status: number; body: Record<string, unknown> }): number {
  console.error(`raftmr ${name}: ${String(reply.body.error ?? `HTTP ${reply.status}`)}`);
  return reply.status === 503 || reply.status === 504 ? 3 : 1;
}

function jobArg(args: ParsedArgs, name: string): string {
  if (args.positionals.length !== 1) throw new UsageError(`${name}: expected one JOB id`);
  return args.positionals[0];
}

/** Bundles an app module and what it imports into one ES module's source (`deno bundle`). */
async function bundleApp(path: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "raftmr-bundle-" });
  const output = `${dir}/app.js`;
  // The running deno when we are one; a compiled raftmr asks the deno on PATH.
  const deno = /deno(\.exe)?$/.test(Deno.execPath()) ? Deno.execPath() : "deno";
  try {
    const result = await new Deno.Command(deno, {
      args: ["bundle", "--quiet", "--platform=deno", "--output", output, path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      const reason = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-3)
        .join(" ");
      throw new Error(`Cannot bundle app module ${path}: ${reason}`);
    }
    return await Deno.readTextFile(output);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function progressLine(view: JobView): string {
  const { map, reduce } = view.tasks;
  return `${view.id} ${view.state} map ${map.done}/${map.total} (${map.running} running) ` +
    `reduce ${reduce.done}/${reduce.total} (${reduce.running} running)`;
}

/** Follows a job until it ends; returns 0 when done, 1 when failed or cancelled. */
async function waitForJob(cluster: ClusterTarget, id: string, name: string): Promise<number> {
  const terminal = Deno.stderr.isTerminal();
  for (;;) {
    const reply = await clientCall(cluster, { op: "get", id });
    if (reply.status !== 200) return refused(name, reply);
    const view = reply.body as unknown as JobView;
    if (terminal) {
      await Deno.stderr.write(new TextEncoder().encode(`\r${progressLine(view)}   `));
    }
    if (view.state === "done" || view.state === "failed" || view.state === "cancelled") {
      if (terminal) await Deno.stderr.write(new TextEncoder().encode("\n"));
      if (view.state === "done") return 0;
      console.error(`raftmr ${name}: job ${id} ${view.state}: ${view.error ?? ""}`);
      return 1;
    }
    await sleep(250);
  }
}

/** `raftmr mr submit`: bundles the app, submits the job, prints its id. */
export const mrSubmitCommand: Command = {
  name: "mr submit",
  summary: summaryOf("mr submit"),
  usage: "mr submit [--cluster ADDRS] --app MODULE --output DIR [flags] INPUT...",
  flags: {
    cluster: CLUSTER_FLAG,
    ...CLIENT_SECURITY_FLAGS,
    app: { type: "string", value: "MODULE", description: "App module path (required)" },
    output: {
      type: "string",
      value: "DIR",
      description: "Output directory on the shared mount (required)",
    },
    reduce: { type: "string", value: "R", default: "10", description: "Number of reduce tasks" },
    "split-size": {
      type: "string",
      value: "SIZE",
      default: "64MiB",
      description: "Cut inputs into line-aligned splits of about this size, one map task each",
    },
    "task-timeout": {
      type: "string",
      value: "DURATION",
      default: "10s",
      description: "Hand a task to another worker when not done within this time",
    },
    wait: { type: "boolean", description: "Follow the job; exit 0 when done, 1 otherwise" },
  },
  details: [
    "MODULE is a path, or the bare name of a bundled app (wc.ts, indexer.ts, ...).",
    "INPUT (files, directories, globs) and --output are paths every worker and peer can read",
    "and write: a shared mount. They are resolved to absolute paths here. The app module is",
    "bundled with its imports (deno bundle) into one module that travels with the job; the",
    "job command, app included, is limited to 1 MiB.",
  ].join("\n"),
  run(args) {
    return clientCommand("mr submit", async () => {
      const cluster = await clusterTarget(args);
      const appPath = requiredFlag(args, "app");
      const output = resolve(requiredFlag(args, "output"));
      const nReduce = intFlag(args, "reduce", 1, 100_000);
      const taskTimeoutMs = durationFlag(args, "task-timeout");
      if (taskTimeoutMs <= 0) throw new UsageError("flag --task-timeout: must be positive");
      let splitSize: number;
      try {
        splitSize = parseSize(stringFlag(args, "split-size") ?? "64MiB");
      } catch (err) {
        throw new UsageError(`flag --split-size: ${errorMessage(err)}`);
      }
      if (args.positionals.length === 0) {
        throw new UsageError("mr submit: no input files: give at least one INPUT");
      }
      const paths = args.positionals.map((p) => isAbsolute(p) ? p : resolve(p));
      // The filesystem is checked here, where the user's permissions are: a peer may be
      // limited to its data directory (raftmr cluster starts it so).
      const { files: inputs, splits } = await inputSplits(paths, splitSize);
      await checkOutputDir(output);
      const app = await bundleApp(resolveAppPath(appPath));
      const reply = await clientCall(cluster, {
        op: "submit",
        job: { app, appName: appPath, inputs, splits, output, nReduce, splitSize, taskTimeoutMs },
      });
      if (reply.status !== 201) return refused("mr submit", reply);
      const id = String(reply.body.id);
      console.log(id);
      if (args.flags.wait !== true) return 0;
      return await waitForJob(cluster, id, "mr submit");
    });
  },
};

/** `raftmr mr status JOB`. */
export const mrStatusCommand: Command = {
  name: "mr status",
  summary: summaryOf("mr status"),
  usage: "mr status [--cluster ADDRS] [--json] JOB",
  flags: {
    cluster: CLUSTER_FLAG,
    json: { type: "boolean", description: "Print the JSON" },
    ...CLIENT_SECURITY_FLAGS,
  },
  run(args) {
    return clientCommand("mr status", async () => {
      const cluster = await clusterTarget(args);
      const reply = await clientCall(cluster, { op: "get", id: jobArg(args, "mr status") });
      if (reply.status !== 200) return refused("mr status", reply);
      const view = reply.body as unknown as JobView;
      if (args.flags.json === true) console.log(JSON.stringify(view, null, 2));
      else {
        console.log(progressLine(view));
        console.log(`output ${view.output}  reruns ${view.reruns}  backups ${view.backups}`);
        if (view.error) console.log(`error ${view.error}`);
      }
      return 0;
    });
  },
};

/** `raftmr mr list`. */
export const mrListCommand: Command = {
  name: "mr list",
  summary: summaryOf("mr list"),
  usage: "mr list [--cluster ADDRS] [--json]",
  flags: {
    cluster: CLUSTER_FLAG,
    json: { type: "boolean", description: "Print the JSON" },
    ...CLIENT_SECURITY_FLAGS,
  },
  run(args) {
    return clientCommand("mr list", async () => {
      const cluster = await clusterTarget(args);
      const reply = await clientCall(cluster, { op: "list" });
      if (reply.status !== 200) return refused("mr list", reply);
      const jobs = reply.body.jobs as JobView[];
      if (args.flags.json === true) console.log(JSON.stringify(jobs, null, 2));
      else {
        for (const view of jobs) console.log(`${progressLine(view)}  ${view.submittedAt}`);
      }
      return 0;
    });
  },
};

/** `raftmr mr cancel JOB`. */
export const mrCancelCommand: Command = {
  name: "mr cancel",
  summary: summaryOf("mr cancel"),
  usage: "mr cancel [--cluster ADDRS] JOB",
  flags: { cluster: CLUSTER_FLAG, ...CLIENT_SECURITY_FLAGS },
  run(args) {
    return clientCommand("mr cancel", async () => {
      const cluster = await clusterTarget(args);
      const reply = await clientCall(cluster, { op: "cancel", id: jobArg(args, "mr cancel") });
      if (reply.status !== 200) return refused("mr cancel", reply);
      console.log(progressLine(reply.body as unknown as JobView));
      return 0;
    });
  },
};

/** `raftmr mr wait JOB`. */
export const mrWaitCommand: Command = {
  name: "mr wait",
  summary: summaryOf("mr wait"),
  usage: "mr wait [--cluster ADDRS] JOB",
  flags: { cluster: CLUSTER_FLAG, ...CLIENT_SECURITY_FLAGS },
  run(args) {
    return clientCommand("mr wait", async () => {
      const cluster = await clusterTarget(args);
      return await waitForJob(cluster, jobArg(args, "mr wait"), "mr wait");
    });
  },
};

/** `raftmr worker --cluster ...`: runs a cluster worker until SIGTERM or SIGINT (exit 0). */
export async function runClusterWorkerCommand(args: ParsedArgs): Promise<number> {
  if (args.flags.app !== undefined) {
    throw new UsageError("worker: --app is not used with --cluster: a job carries its app");
  }
  rejectPositionals(args, "worker");
  const cluster = await clusterTarget(args);
  const listenRaw = stringFlag(args, "listen") ?? "127.0.0.1:0";
  const listen = hostPortValue(listenRaw, "flag --listen");
  const advertiseRaw = stringFlag(args, "advertise");
  if (advertiseRaw !== undefined) hostPortValue(advertiseRaw, "flag --advertise");
  const httpRaw = stringFlag(args, "http");
  const http = httpRaw === undefined ? undefined : hostPortValue(httpRaw, "flag --http");
  const status = newWorkerStatus(cluster.addresses.join(","), "(each job's)");
  const server = http ? serveWorkerHttp(http, status) : undefined;
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    return await runClusterWorker({
      cluster: cluster.addresses,
      access: cluster.access,
      listen,
      advertise: advertiseRaw,
      dataDir: stringFlag(args, "data-dir"),
      signal: controller.signal,
      status,
    });
  } finally {
    await server?.shutdown();
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
}
