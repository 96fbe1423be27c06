/**
 * `raftmr worker`: the MapReduce worker command. Its own module, importing only what a worker
 * runs, because `mr run` starts one process per worker and each pays for what it loads; the
 * status page (--http) and the cluster form (--cluster) are loaded when asked for.
 */
import { summaryOf } from "../cli/command_table.ts";
import { CLIENT_SECURITY_FLAGS } from "../cli/client_security.ts";
import { formatHostPort } from "../net/host_port.ts";
import {
  type Command,
  hostPortFlag,
  hostPortValue,
  rejectPositionals,
  requiredFlag,
  stringFlag,
} from "../cli/command.ts";
import { TaskRunner } from "./task_runner.ts";
import type { HttpListener } from "../net/http_listener.ts";
import { stopSignal } from "../cli/signals.ts";
import { LOG_FLAGS, loggerFromFlags } from "../cli/log.ts";
import { workerToken } from "./worker_auth.ts";
import { INTERRUPTED, listenError } from "./listen_error.ts";

/** `raftmr worker`: asks the coordinator for tasks and runs them with the app. */
export const workerCommand: Command = {
  name: "worker",
  summary: summaryOf("worker"),
  usage: "worker [flags] (--app MODULE | --cluster ADDRS)",
  flags: {
    coordinator: {
      type: "string",
      value: "HOST:PORT",
      default: "127.0.0.1:7100",
      description: "The coordinator's RPC address",
    },
    app: {
      type: "string",
      value: "MODULE",
      description: "App module path (with --coordinator; a cluster job carries its app)",
    },
    cluster: {
      type: "string",
      value: "ADDRS",
      description: "Work for the Raft cluster's jobs (no --app): the peers' native addresses, " +
        "e.g. 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
    },
    ...CLIENT_SECURITY_FLAGS,
    "data-dir": {
      type: "string",
      value: "DIR",
      description: "This worker's intermediate data (default: a fresh temporary directory)",
    },
    listen: {
      type: "string",
      value: "HOST:PORT",
      default: "127.0.0.1:0",
      description: "Where reducers fetch this worker's map output (port 0: any free port)",
    },
    advertise: {
      type: "string",
      value: "HOST:PORT",
      description: "The address other machines reach --listen at (default: the bound address)",
    },
    http: {
      type: "string",
      value: "HOST:PORT",
      description: "Serve /status, /metrics and a progress page here (default: none)",
    },
    ...LOG_FLAGS,
  },
  details: [
    "Exits 0 when the job is done or the coordinator, once reached, has been unreachable for",
    "3 s; 1 when the coordinator never answered (a line names the address), the app cannot be",
    "imported or lacks map/reduce, or the coordinator reports the job failed. APP is a path, or",
    "the bare name of a bundled app (wc.ts, indexer.ts, ...) when no such file is here.",
    "Removes the job's intermediate data when the job ends (a temporary --data-dir entirely).",
    "",
    "Example:",
    "  raftmr worker --app wc.ts",
  ].join("\n"),
  async run(args) {
    if (args.flags.cluster !== undefined) {
      // The cluster form needs the job client and the cluster worker; a standalone one does not.
      const { runClusterWorkerCommand } = await import("./jobs_cli.ts");
      return await runClusterWorkerCommand(args);
    }
    const coordinator = hostPortFlag(args, "coordinator");
    const appPath = requiredFlag(args, "app");
    rejectPositionals(args, "worker");
    const listen = hostPortFlag(args, "listen");
    const advertiseFlag = stringFlag(args, "advertise");
    const advertise = advertiseFlag === undefined
      ? undefined
      : formatHostPort(hostPortValue(advertiseFlag, "flag --advertise"));
    const dataDir = stringFlag(args, "data-dir");
    const token = await workerToken(args);
    const httpFlag = stringFlag(args, "http");
    const http = httpFlag === undefined ? undefined : hostPortValue(httpFlag, "flag --http");
    const log = loggerFromFlags(args);
    // The task thread first, once the command line is known to be good: it boots, loads the
    // engine and imports the app (about 40 ms of CPU) while this thread loads the worker's own
    // modules (RPC, data server, about 20) instead of after them.
    const starting = TaskRunner.start(appPath);
    // Awaited by runWorker; this keeps a failure seen before then from being "unhandled".
    starting.catch(() => {});
    const { newWorkerStatus, runWorker } = await import("./worker.ts");
    const status = newWorkerStatus(`${coordinator.hostname}:${coordinator.port}`, appPath);
    // Ctrl-C: exit at once; the worker's unload handler still removes its temporary directory.
    stopSignal().then(() => Deno.exit(INTERRUPTED));
    const bound = [{ ...listen, what: "--listen" }];
    let server: HttpListener | undefined;
    try {
      if (http) {
        bound.push({ ...http, what: "--http" });
        // Hono and the status page only when asked for.
        const { serveWorkerHttp } = await import("./worker_http.ts");
        server = serveWorkerHttp(http, status);
      }
      return await runWorker({
        coordinator,
        appPath,
        status,
        listen,
        advertise,
        dataDir,
        log,
        token,
        runner: starting,
      });
    } catch (err) {
      const message = listenError(err, bound);
      if (message === undefined) throw err;
      log.error(`worker: ${message}`);
      return 1;
    } finally {
      await server?.shutdown();
    }
  },
};
