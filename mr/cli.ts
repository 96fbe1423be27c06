/**
 * The MapReduce subcommands `coordinator` and the one-command local form `mr run`
 * (`worker` is mr/worker_cli.ts: a worker process loads only what it needs).
 */
import { summaryOf } from "../cli/command_table.ts";
import {
  type Command,
  durationFlag,
  type FlagSpec,
  hostPortFlag,
  intFlag,
  type ParsedArgs,
  requiredFlag,
  stringFlag,
  UsageError,
} from "../cli/command.ts";
import { AppLoadError, loadApp, resolveAppPath } from "./app.ts";
// Types only: the coordinator's modules load when a coordinator starts, so `mr run` starts its
// workers first (runLocalJob).
import type { Coordinator, JobResult } from "./coordinator.ts";
import { checkInputs, expandInputs, InputError } from "./inputs.ts";
import { extraAttempts } from "./attempt_summary.ts";
import { DEFAULT_SPLIT_SIZE, localSplitSize, parseSize, SPLITS_PER_WORKER } from "./splits.ts";
import { outputName } from "./partition.ts";
import { selfCommand } from "../cli/self.ts";
import { sleep } from "../util/sleep.ts";
import { randomHex } from "../util/random_hex.ts";
import { localStageDir } from "./local_output.ts";
import { INTERRUPTED, listenError } from "./listen_error.ts";
import { stopSignal } from "../cli/signals.ts";
import { taskThreadPermissions, workerPermissions } from "../cli/permissions.ts";
import { type LocalWorkers, startWorkerProcesses, startWorkerThreads } from "./local_workers.ts";
import { threadAvailable } from "./task_runner.ts";
import { LOG_FLAGS, logFlagArgs, type LogFn, loggerFromFlags } from "../cli/log.ts";
import {
  COORDINATOR_AUTH_FLAGS,
  coordinatorTokens,
  newJobToken,
  writeTokenFile,
} from "./worker_auth.ts";

function inputFiles(args: ParsedArgs): string[] {
  if (args.positionals.length === 0) throw new UsageError("no input files: give at least one FILE");
  return args.positionals;
}

/** The inputs' total size in bytes; unreadable files count 0 (the coordinator reports them). */
async function totalSize(files: string[]): Promise<number> {
  let total = 0;
  for (const file of files) total += await Deno.stat(file).then((s) => s.size, () => 0);
  return total;
}

function splitSizeFlag(args: ParsedArgs): number {
  try {
    return parseSize(stringFlag(args, "split-size") ?? String(DEFAULT_SPLIT_SIZE));
  } catch (err) {
    throw new UsageError(`flag --split-size: ${(err as Error).message}`);
  }
}

function positiveDuration(args: ParsedArgs, name: string): number {
  const ms = durationFlag(args, name);
  if (ms <= 0) throw new UsageError(`flag --${name}: must be positive`);
  return ms;
}

function outputsText(nReduce: number): string {
  return nReduce === 1 ? outputName(0) : `${outputName(0)} .. ${outputName(nReduce - 1)}`;
}

/** The one line a failure to start becomes (see listenError), or undefined. */
function startupError(
  err: unknown,
  addresses: { hostname: string; port: number; what: string }[] = [],
): string | undefined {
  if (err instanceof InputError) return err.message;
  return listenError(err, addresses);
}

/** Flags the coordinator and `mr run` share: the job's shape and its re-issue timeout. */
const JOB_FLAGS: Record<string, FlagSpec> = {
  reduce: { type: "string", value: "R", default: "10", description: "Number of reduce tasks" },
  "task-timeout": {
    type: "string",
    value: "DURATION",
    default: "10s",
    description: "Hand a task to another worker when not done within this time",
  },
  "split-size": {
    type: "string",
    value: "SIZE",
    default: "64MiB",
    description: "Cut inputs into line-aligned splits of about this size, one map task each",
  },
};

/** `raftmr coordinator`: runs one job's coordinator until every output file is final. */
export const coordinatorCommand: Command = {
  name: "coordinator",
  summary: summaryOf("coordinator"),
  usage: "coordinator [flags] INPUT...",
  flags: {
    listen: {
      type: "string",
      value: "HOST:PORT",
      default: "127.0.0.1:7100",
      description: "RPC address workers connect to",
    },
    ...JOB_FLAGS,
    http: {
      type: "string",
      value: "HOST:PORT",
      default: "127.0.0.1:7180",
      description: "HTTP status page, /status, /metrics, and the job's data (workers need it)",
    },
    "worker-timeout": {
      type: "string",
      value: "DURATION",
      default: "10s",
      description: "A worker not heard from this long is dead: its maps run again",
    },
    // A worker that never reaches its coordinator fails (exit 1: most likely a wrong
    // --coordinator), so one started just as the job ends must still find it. 5 s covers a
    // worker starting on a busy machine; a script that starts workers late can give more.
    linger: {
      type: "string",
      value: "DURATION",
      default: "5s",
      description: 'After the job, answer "done" this long so late workers exit cleanly ' +
        "(Ctrl-C ends it)",
    },
    "output-dir": {
      type: "string",
      value: "DIR",
      default: ".",
      description: "Where mr-out-<r> files are written",
    },
    "no-backup-tasks": {
      type: "boolean",
      description: "Never give a straggling task a backup attempt near the end of a phase",
    },
    ...COORDINATOR_AUTH_FLAGS,
    ...LOG_FLAGS,
  },
  details: [
    "INPUT is a file, a directory (its regular files not named .* or _*) or a glob. Workers",
    "need no shared filesystem: they read splits from the coordinator over HTTP and fetch map",
    "output from each other. Exits 0 once every output file is final, 1 if the job fails (a",
    "task failed or timed out 3 times), 2 when an input is missing, unreadable or not a",
    "regular file, or a directory holds no input file.",
    "",
    "Example:",
    "  raftmr coordinator pg-*.txt &",
    "  raftmr worker --app wc.ts & raftmr worker --app wc.ts",
  ].join("\n"),
  async run(args) {
    const listen = hostPortFlag(args, "listen");
    const http = hostPortFlag(args, "http");
    const nReduce = intFlag(args, "reduce", 1, 100_000);
    const taskTimeoutMs = positiveDuration(args, "task-timeout");
    const workerTimeoutMs = positiveDuration(args, "worker-timeout");
    const lingerMs = durationFlag(args, "linger");
    const splitSize = splitSizeFlag(args);
    const outputDir = stringFlag(args, "output-dir") ?? ".";
    const backupTasks = args.flags["no-backup-tasks"] !== true;
    const tokens = await coordinatorTokens(args, listen);
    const log = loggerFromFlags(args);
    let coordinator: Coordinator;
    let files: string[];
    try {
      files = await expandInputs(inputFiles(args));
      const info = await Deno.stat(outputDir).catch(() => undefined);
      if (!info?.isDirectory) {
        throw new UsageError(`flag --output-dir: ${outputDir} is not a directory`);
      }
      const { Coordinator } = await import("./coordinator.ts");
      coordinator = await Coordinator.start({
        files,
        nReduce,
        taskTimeoutMs,
        workerTimeoutMs,
        splitSize,
        outputDir,
        backupTasks,
        listen,
        http,
        log,
        tokens,
      });
    } catch (err) {
      // A bad input is a bad command line: one line, exit 2, before anything listens.
      if (err instanceof InputError) throw new UsageError(`coordinator: ${err.message}`);
      const message = startupError(err, [
        { ...listen, what: "--listen" },
        { ...http, what: "--http" },
      ]);
      if (message === undefined) throw err;
      log.error(`coordinator: ${message}`);
      return 1;
    }
    const rpc = coordinator.rpcAddress;
    const web = coordinator.httpAddress!;
    const nMap = coordinator.progress().nMap;
    log(
      `coordinator: ${files.length} input files in ${nMap} splits, ${nReduce} reduce tasks; ` +
        `workers connect to ${rpc.hostname}:${rpc.port}; status and data at ` +
        `http://${web.hostname}:${web.port}/`,
      { inputs: files.length, maps: nMap, reduces: nReduce, listen: `${rpc.hostname}:${rpc.port}` },
    );
    if (tokens === undefined) {
      log.warn(
        `coordinator: no --token-file: any process that reaches ${rpc.hostname}:${rpc.port} ` +
          "can act as a worker",
      );
    }
    const started = Date.now();
    const stop = stopSignal();
    const result = await Promise.race([coordinator.finished, stop]);
    if (typeof result === "string") {
      log.warn(`coordinator: ${result}: stopping; the job is not finished`, { signal: result });
      await coordinator.close();
      return INTERRUPTED;
    }
    reportResult(log, "coordinator", result, started, nReduce);
    // MIT 6.824 lab 1: linger so workers asking for work hear "done" instead of a closed port.
    // The job is over either way: a signal only cuts the wait short.
    await Promise.race([sleep(lingerMs), stop]);
    await coordinator.close();
    return result.ok ? 0 : 1;
  },
};

function reportResult(
  log: LogFn,
  who: string,
  result: JobResult,
  started: number,
  nReduce: number,
): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.ok) log(`${who}: job done in ${seconds} s: ${outputsText(nReduce)}`);
  else log(`${who}: Job failed: ${result.error}`, { level: "error" });
}

/** `raftmr mr run`: a coordinator and N workers in this process (or N worker processes). */
export const mrRunCommand: Command = {
  name: "mr run",
  summary: summaryOf("mr run"),
  usage: "mr run --app MODULE [--workers N] [--reduce R] FILE...",
  flags: {
    app: { type: "string", value: "MODULE", description: "App module path (required)" },
    workers: {
      type: "string",
      value: "N",
      default: String(navigator.hardwareConcurrency || 2),
      description: "Workers: task threads of this process, or processes with --processes",
    },
    processes: {
      type: "boolean",
      description:
        "Run each worker as a process of its own: one whose app runs out of memory is replaced",
    },
    ...JOB_FLAGS,
    "split-size": {
      type: "string",
      value: "SIZE",
      description:
        "Split size (default: tasks of at most 16 MiB planned to end the map phase evenly)",
    },
    http: {
      type: "string",
      value: "HOST:PORT",
      description: "Also serve the status page here (default: none)",
    },
    ...LOG_FLAGS,
  },
  details: [
    "Writes mr-out-<r> files into the current directory, like coordinator + workers; each",
    "worker keeps its intermediate data in a temporary directory of its own.",
    "",
    "Example:",
    "  raftmr mr run --app wc.ts --workers 2 pg-*.txt && sort mr-out-* | head",
  ].join("\n"),
  async run(args) {
    const appPath = requiredFlag(args, "app");
    const workers = intFlag(args, "workers", 1, 1024);
    const nReduce = intFlag(args, "reduce", 1, 100_000);
    const taskTimeoutMs = positiveDuration(args, "task-timeout");
    // Without --split-size, runLocalJob sizes splits from the inputs and the worker count.
    const splitSize = stringFlag(args, "split-size") === undefined
      ? undefined
      : splitSizeFlag(args);
    const httpRaw = stringFlag(args, "http");
    const http = httpRaw === undefined ? undefined : hostPortFlag(args, "http");
    const files = await expandInputs(inputFiles(args)).catch((err) => {
      if (err instanceof InputError) throw new UsageError(`mr run: ${err.message}`);
      throw err;
    });
    return await runLocalJob({
      appPath,
      workers,
      nReduce,
      taskTimeoutMs,
      http,
      files,
      splitSize,
      processes: args.flags.processes === true,
      log: loggerFromFlags(args),
      workerArgs: logFlagArgs(args),
      interrupted: stopSignal(),
    });
  },
};

/** Options of runLocalJob, the engine of `mr run`. */
export interface LocalJobOptions {
  appPath: string;
  workers: number;
  nReduce: number;
  taskTimeoutMs: number;
  files: string[];
  /** Split size in bytes (default: localSplitSize of the inputs' total size). */
  splitSize?: number;
  http?: { hostname: string; port: number };
  /** Show a progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Where the coordinator's lines go (default: stderr as text). */
  log?: LogFn;
  /**
   * Run each worker as a process of its own rather than as a task thread of this process (as
   * where task threads do not exist: the bundled or compiled build).
   */
  processes?: boolean;
  /** Extra flags for every worker process (e.g. --log-format json). */
  workerArgs?: string[];
  /** Resolves with a signal's name when the job is to stop now (Ctrl-C). */
  interrupted?: Promise<string>;
}

/**
 * Runs a job with an in-process coordinator and `workers` workers (mr/local_workers.ts: task
 * threads of this process, or worker processes); returns the exit code. A worker that ends with
 * a failure while the job runs is replaced, a bounded number of times, so a crashing app still
 * finishes or fails instead of hanging.
 */
export async function runLocalJob(options: LocalJobOptions): Promise<number> {
  const log = options.log ?? ((line: string) => console.error(line));
  try {
    // The app and the inputs first, here (a few ms for the bundled apps, a stat and an open per
    // input): a broken module or a missing input is reported once, clearly, and no worker is
    // started to fail on it.
    await loadApp(options.appPath);
    await checkInputs(options.files);
  } catch (err) {
    if (!(err instanceof AppLoadError) && !(err instanceof InputError)) throw err;
    log(`mr run: ${err.message}`, { level: "error" });
    return 1;
  }
  // Then the workers, before anything else: a task thread takes about 40 ms to boot and load
  // its app, a worker process about 100, and meanwhile this thread loads the coordinator's
  // modules, sizes the inputs and plans the splits. The coordinator's port is bound now: worker
  // processes dial it at once, their connections waiting in its listen backlog until it serves.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const address = `127.0.0.1:${listener.addr.port}`;
  // The job's own worker token: the coordinator's port admits only the workers started here.
  const token = newJobToken();
  // The job's id: the workers' permissions name its staging directory for reduce outputs.
  const job = randomHex(8);
  // Each worker gets a data directory of its own under one job directory, and the permissions
  // of a worker: its app, that directory, the inputs and the other workers' map output (read
  // in place: localWorkers below), and the coordinator's staging directory for reduce outputs.
  const jobDir = await Deno.makeTempDir({ prefix: "raftmr-job-" });
  const appPath = resolveAppPath(options.appPath);
  const stageDirs = [localStageDir(".", job)];
  const respawns = options.workers * 5;
  let workers: LocalWorkers;
  if (options.processes || !threadAvailable()) {
    const tokenFile = `${jobDir}/token`;
    await writeTokenFile(tokenFile, token);
    let workerCount = 0;
    workers = startWorkerProcesses({
      count: options.workers,
      respawns,
      command: () => {
        const dataDir = `${jobDir}/worker-${++workerCount}`;
        return selfCommand(
          ["worker", "--coordinator", address, "--app", appPath, "--data-dir", dataDir]
            .concat(["--token-file", tokenFile], options.workerArgs ?? []),
          [
            ...workerPermissions(
              appPath,
              dataDir,
              [tokenFile, ...options.files, jobDir],
              stageDirs,
            ),
            // V8's own gc() for the heap trim between maps (one collection instead of the two a
            // gc obtained at run time makes: mr/heap_trim.ts), when this process has it too:
            // Deno's cache of compiled modules is valid only for one set of V8 flags, and
            // workers with other flags than mr run's recompiled and rewrote it for the modules
            // they share.
            ...(typeof (globalThis as { gc?: unknown }).gc === "function"
              ? ["--v8-flags=--expose-gc"]
              : []),
          ],
        );
      },
    });
  } else {
    workers = startWorkerThreads({
      count: options.workers,
      respawns,
      appPath,
      jobDir,
      coordinator: { hostname: "127.0.0.1", port: listener.addr.port },
      token,
      permissions: (dataDir) =>
        taskThreadPermissions(appPath, dataDir, [...options.files, jobDir], stageDirs),
      log,
    });
  }

  let coordinator: Coordinator;
  try {
    const { Coordinator } = await import("./coordinator.ts");
    coordinator = await Coordinator.start({
      tokens: [token],
      files: options.files,
      nReduce: options.nReduce,
      taskTimeoutMs: options.taskTimeoutMs,
      splitSize: options.splitSize ??
        localSplitSize(await totalSize(options.files), options.workers),
      // The workers run here: they read their splits from the inputs, not over HTTP.
      localWorkers: true,
      // Without --split-size, map tasks shrink toward the end so the map phase ends evenly.
      planWorkers: options.splitSize === undefined ? options.workers : undefined,
      // Many small files: a few per map task, while each worker still gets several tasks.
      minMapTasks: SPLITS_PER_WORKER * options.workers,
      job,
      listen: listener,
      http: options.http,
      log,
    });
  } catch (err) {
    // No job: stop the workers started for it (they hold nothing yet) and remove their data.
    try {
      listener.close();
    } catch {
      // The coordinator's RPC server took it over and closed it.
    }
    await workers.end(0);
    await Deno.remove(jobDir, { recursive: true }).catch(() => {});
    const message = startupError(
      err,
      options.http ? [{ ...options.http, what: "--http" }] : [],
    );
    if (message === undefined) throw err;
    log(`mr run: ${message}`, { level: "error" });
    return 1;
  }
  const started = Date.now();
  console.error(
    `mr run: ${options.files.length} input files in ${coordinator.progress().nMap} splits, ` +
      `${options.nReduce} reduce tasks, ${options.workers} workers`,
  );

  const showProgress = options.progress ?? Deno.stderr.isTerminal();
  const bar = showProgress ? setInterval(() => drawProgress(coordinator, started), 200) : undefined;
  /** The workers' end, begun at once on a signal. */
  let ending: Promise<void> | undefined;
  const result: JobResult = await Promise.race([
    coordinator.finished,
    workers.allGone.then((): JobResult => ({
      ok: false,
      error: "Every worker exited before the job finished",
    })),
    new Promise<JobResult>((resolve) =>
      options.interrupted?.then((signal) => {
        // At once: the terminal's SIGINT is ending the workers too, and none may be replaced.
        ending = workers.end(0);
        resolve({ ok: false, error: `Interrupted by ${signal}` });
      })
    ),
  ]);
  clearInterval(bar);
  if (showProgress) {
    drawProgress(coordinator, started);
    await Deno.stderr.write(new TextEncoder().encode("\n"));
  }
  // Workers learn the job is over on their next ask (held ones at once): give stragglers (a
  // stalled app) a moment, unless the user asked to stop now.
  const interrupted = ending !== undefined;
  await (ending ?? workers.end(2000));
  const extra = extraAttempts(coordinator.status());
  if (extra !== undefined) log(`mr run: ${extra}`);
  // Both at once: the job's directory does not depend on the coordinator.
  await Promise.all([
    coordinator.close(),
    Deno.remove(jobDir, { recursive: true }).catch(() => {}),
  ]);
  reportResult(log, "mr run", result, started, options.nReduce);
  return interrupted ? INTERRUPTED : result.ok ? 0 : 1;
}

function drawProgress(coordinator: Coordinator, started: number): void {
  const p = coordinator.progress();
  const done = p.mapsDone + p.reducesDone;
  const total = p.nMap + p.nReduce;
  const width = 30;
  const filled = Math.round((width * done) / total);
  const line =
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] map ${p.mapsDone}/${p.nMap}` +
    ` reduce ${p.reducesDone}/${p.nReduce} ${((Date.now() - started) / 1000).toFixed(1)} s`;
  // On stderr, so `mr run ... > out` keeps stdout clean; "\x1b[K" clears the rest of the line
  // (a shorter redraw would otherwise leave the tail of a longer one).
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\x1b[K`));
}
