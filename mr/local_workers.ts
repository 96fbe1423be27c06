/**
 * The workers of an `mr run` job, in one of two forms behind one interface:
 * - task threads of the `mr run` process (the default where task threads exist): each worker's
 *   loop runs on this process's main thread beside the coordinator, and its app on a task thread
 *   of its own with the paths a worker process would have (Deno's per-worker permissions). This
 *   is the local mode of Spark (`local[N]`) and Hadoop (LocalJobRunner): a job on one machine
 *   does not pay for starting a Deno process per worker (about 60 ms of a one-second job on 2
 *   cores, measured in bench/mr.ts).
 * - worker processes (`--processes`, and the bundled or compiled build): each worker is a
 *   `raftmr worker` process, so an app that exhausts its heap ends only its worker, which is
 *   replaced, and each can be given V8 flags of its own.
 * Either way a worker that ends with a failure while the job runs is replaced, a bounded number
 * of times, and the workers speak the same RPC to the coordinator.
 */
import { TaskRunner } from "./task_runner.ts";
import type { LogFn } from "../cli/log.ts";

/** The running workers of one job. */
export interface LocalWorkers {
  /** Resolves once no worker is left and none is to be replaced. */
  readonly allGone: Promise<void>;
  /**
   * Replaces no worker from now on, waits up to `graceMs` for every worker to end by itself (it
   * learns the job is over on its next ask), then ends the rest; resolves when all are gone.
   */
  end(graceMs: number): Promise<void>;
}

/** How to start one worker process (mr/cli.ts builds the command line and its permissions). */
export interface WorkerProcessOptions {
  count: number;
  /** The next worker's program and arguments (each call gives a fresh data directory). */
  command(): { program: string; args: string[] };
  /** How many workers that failed may be replaced in all. */
  respawns: number;
}

/**
 * Starts `count` worker processes at once. They dial the coordinator's port, already bound:
 * their connections wait in its listen backlog until the coordinator serves it.
 */
export function startWorkerProcesses(options: WorkerProcessOptions): LocalWorkers {
  const workers = new Supervisor(options.count, options.respawns, () => {
    const { program, args } = options.command();
    // DENO_NO_UPDATE_CHECK: Deno would otherwise look up its download server about 0.5 s into
    // every worker (a DNS query and a TLS client built), in the middle of the job's maps.
    const env = { DENO_NO_UPDATE_CHECK: "1" };
    const child = new Deno.Command(program, { args, stdin: "null", env }).spawn();
    return { handle: child, ended: child.status.then((status) => status.success) };
  });
  return {
    allGone: workers.allGone,
    async end(graceMs) {
      await workers.retire(graceMs);
      // Whatever is left (a stalled app) is killed: the job's outputs are final or abandoned.
      for (const child of workers.handles()) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }
      await workers.gone();
    },
  };
}

/** How to run the workers as task threads of this process. */
export interface WorkerThreadOptions {
  count: number;
  appPath: string;
  /** Each worker's data directory goes under this one (worker-1, worker-2, ...). */
  jobDir: string;
  /** The coordinator's address on this machine. */
  coordinator: { hostname: string; port: number };
  /** The job's worker token. */
  token: string;
  /** The Deno permissions of the task thread of the worker whose data is in `dataDir`. */
  permissions(dataDir: string): Deno.PermissionOptionsObject;
  /** How many workers that failed may be replaced in all. */
  respawns: number;
  log: LogFn;
}

/**
 * Starts `count` workers as task threads at once: a thread takes about 40 ms to boot and import
 * the engine and the app, meanwhile this thread starts the coordinator. Their loops dial the
 * coordinator's port at once too, as worker processes do; stopped before the coordinator
 * answers (it could not start), they end without a word.
 */
export function startWorkerThreads(options: WorkerThreadOptions): LocalWorkers {
  const abort = new AbortController();
  let started = 0;
  // The worker loop's modules (RPC client, data server) load while the threads boot.
  const workerModule = import("./worker.ts");
  const workers = new Supervisor(options.count, options.respawns, () => {
    const dataDir = `${options.jobDir}/worker-${++started}`;
    const runner = TaskRunner.start(options.appPath, options.permissions(dataDir), abort.signal);
    // The loop awaits it (and reports a failure to load the app); until then it is not unhandled.
    runner.catch(() => {});
    const loop = workerModule.then(({ runWorker }) =>
      runWorker({
        coordinator: options.coordinator,
        appPath: options.appPath,
        dataDir,
        token: options.token,
        runner,
        log: options.log,
        signal: abort.signal,
      })
    ).catch((err) => {
      options.log(`worker: ${err instanceof Error ? err.message : String(err)}`, {
        level: "error",
      });
      return 1;
    });
    return { handle: loop, ended: loop.then((code) => code === 0) };
  });
  return {
    allGone: workers.allGone,
    async end(graceMs) {
      await workers.retire(graceMs);
      // The rest (a stalled app, or workers of a job stopped early) end now: their calls to the
      // coordinator fail at once and their task threads are terminated.
      abort.abort();
      await workers.gone();
    },
  };
}

/**
 * Keeps `count` workers running, each made by `start` (its handle, and whether it ended well):
 * one that ends badly while the job runs is replaced, at most `respawns` times in all.
 */
class Supervisor<T> {
  readonly #running = new Map<T, Promise<boolean>>();
  readonly #start: () => { handle: T; ended: Promise<boolean> };
  #respawnsLeft: number;
  #over = false;
  #resolveAllGone!: () => void;
  /** Resolves once no worker is left and none is to be replaced. */
  readonly allGone = new Promise<void>((resolve) => (this.#resolveAllGone = resolve));

  constructor(
    count: number,
    respawns: number,
    start: () => { handle: T; ended: Promise<boolean> },
  ) {
    this.#respawnsLeft = respawns;
    this.#start = start;
    for (let i = 0; i < count; i++) this.#add();
  }

  #add(): void {
    const { handle, ended } = this.#start();
    this.#running.set(handle, ended);
    ended.then((ok) => {
      this.#running.delete(handle);
      if (!this.#over && !ok && this.#respawnsLeft > 0) {
        this.#respawnsLeft--;
        this.#add();
      } else if (this.#running.size === 0) {
        this.#resolveAllGone();
      }
    });
  }

  /** The workers still running. */
  handles(): T[] {
    return [...this.#running.keys()];
  }

  /** Replaces no worker from now on, then waits up to `graceMs` for all to end by themselves. */
  async retire(graceMs: number): Promise<void> {
    this.#over = true;
    if (this.#running.size > 0 && graceMs > 0) await waitAtMost(this.gone(), graceMs);
  }

  /** Resolves when every worker running now has ended. */
  gone(): Promise<void> {
    return Promise.all(this.#running.values()).then(() => {});
  }
}

/** Waits for `promise`, or `ms` at most. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
