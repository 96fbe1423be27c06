/**
 * The worker process's side of its task thread: starts the thread, has it import the app, and
 * runs one map or reduce request at a time on it. A thread the app ended (Deno.exit, an uncaught
 * error) is replaced by a fresh one for the next task. Where the thread's module is not a file on
 * disk (the bundled or compiled build), tasks run in this thread instead, without that isolation.
 */
import { fileURLToPath } from "node:url";
import { AppLoadError, loadApp, type MapReduceApp } from "./app.ts";
import { CorruptInputError } from "./checked_source.ts";
import {
  type EngineIo,
  handleTaskRequest,
  type TaskReply,
  type TaskRequest,
} from "./task_protocol.ts";

/** A map or reduce request, without the id the runner assigns. */
export type TaskJob =
  | Omit<Extract<TaskRequest, { type: "map" }>, "id">
  | Omit<Extract<TaskRequest, { type: "reduce" }>, "id">;

/** The app's code threw or rejected: `message` is "Name: message" of what it threw. */
export class TaskFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskFailedError";
  }
}

/** The app ended its task thread (Deno.exit or an uncaught error) before finishing the task. */
export class TaskExitedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskExitedError";
  }
}

/** The error a "failed" reply stands for: a corrupt input, or the app's own failure. */
function failure(reply: Extract<TaskReply, { type: "failed" }>): Error {
  if (reply.corruptInput !== undefined) {
    // The thread's text is "CorruptInputError: <message>"; the error keeps its own name.
    const message = reply.error.replace(/^CorruptInputError: /, "");
    return new CorruptInputError(reply.corruptInput, message);
  }
  return new TaskFailedError(reply.error);
}

const THREAD_URL = new URL("./task_thread.ts", import.meta.url);

/** Whether tasks can run on task threads here (not in the bundled or compiled build). */
export function threadAvailable(): boolean {
  // Deno.statSync rather than node:fs existsSync: node:fs costs a worker ~15 ms to load.
  try {
    return THREAD_URL.protocol === "file:" && Deno.statSync(fileURLToPath(THREAD_URL)).isFile;
  } catch {
    return false;
  }
}

interface Pending {
  id: number;
  /** The thread running the task: events from any other (replaced) thread never settle it. */
  thread: Worker;
  resolve(io: EngineIo): void;
  reject(error: Error): void;
}

/** Runs tasks on a task thread that has the app loaded. */
export class TaskRunner {
  readonly #appPath: string;
  readonly #inProcess?: MapReduceApp;
  readonly #permissions?: Deno.PermissionOptionsObject;
  #thread?: Worker;
  #ready?: Promise<void>;
  /** Fails #ready: the thread was closed before it loaded the app. */
  #failReady?: (error: Error) => void;
  #pending?: Pending;
  #nextId = 1;
  #threadsStarted = 0;
  /** Called when the running task reports progress (pairs emitted, keys reduced). */
  onProgress?: () => void;

  private constructor(
    appPath: string,
    inProcess?: MapReduceApp,
    permissions?: Deno.PermissionOptionsObject,
  ) {
    this.#appPath = appPath;
    this.#inProcess = inProcess;
    this.#permissions = permissions;
  }

  /**
   * Starts a runner whose thread has imported the app; throws AppLoadError if it cannot, and
   * TaskExitedError if the app ended the thread as it loaded or `signal` aborted first (a thread
   * whose app never finishes loading is terminated then). With `permissions`, each of its
   * threads gets those instead of the process's own (Deno's `--unstable-worker-options`, which
   * deno.json turns on).
   */
  static async start(
    appPath: string,
    permissions?: Deno.PermissionOptionsObject,
    signal?: AbortSignal,
  ): Promise<TaskRunner> {
    if (!threadAvailable()) return new TaskRunner(appPath, await loadApp(appPath));
    const runner = new TaskRunner(appPath, undefined, permissions);
    const abort = () => runner.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      if (signal?.aborted) throw new TaskExitedError("The task runner was closed");
      await runner.#spawn();
    } catch (err) {
      // Not loaded, or ended as it loaded: running the app here instead would do the same, or
      // worse (its Deno.exit() would end this process).
      if (err instanceof AppLoadError || err instanceof TaskExitedError) throw err;
      // The thread could not start at all (its modules unreadable): run tasks here instead.
      return new TaskRunner(appPath, await loadApp(appPath));
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    return runner;
  }

  /** Whether app code runs on a separate thread. */
  get isolated(): boolean {
    return this.#inProcess === undefined;
  }

  /** How many task threads this runner has started: more than one means an app ended one. */
  get threadsStarted(): number {
    return this.#threadsStarted;
  }

  #spawn(): Promise<void> {
    const thread = new Worker(THREAD_URL, {
      type: "module",
      ...(this.#permissions ? { deno: { permissions: this.#permissions } } : {}),
    });
    this.#threadsStarted++;
    this.#thread = thread;
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#failReady = reject;
      thread.onmessage = (event: MessageEvent<TaskReply>) => {
        const reply = event.data;
        if (reply.type === "loaded") resolve();
        else if (reply.type === "loadError") {
          this.#drop(thread);
          reject(new AppLoadError(reply.message));
        } else if (reply.type === "exited") {
          this.#drop(thread);
          const error = new TaskExitedError("The app ended its task thread (Deno.exit)");
          reject(error);
          this.#settle(thread, undefined, error);
        } else if (reply.type === "progress") {
          if (this.#pending?.thread === thread && this.#pending.id === reply.id) {
            this.onProgress?.();
          }
        } else if (reply.type === "done") this.#settle(thread, reply.io);
        else this.#settle(thread, undefined, failure(reply));
      };
      thread.onerror = (event: ErrorEvent) => {
        // An uncaught error ends the thread; it must not end the process.
        event.preventDefault();
        this.#drop(thread);
        const error = new TaskExitedError(`The app's task thread died: ${event.message}`);
        reject(error);
        this.#settle(thread, undefined, error);
      };
    });
    thread.postMessage({ type: "load", appPath: this.#appPath } satisfies TaskRequest);
    return this.#ready;
  }

  #drop(thread: Worker): void {
    thread.terminate();
    if (this.#thread === thread) {
      this.#thread = undefined;
      this.#ready = undefined;
    }
  }

  /**
   * Settles the running task with what `thread` reported. A thread's death can be reported after
   * a fresh thread took over (an app's timer threw after its task was done); that report belongs
   * to no task still running, so it is ignored.
   */
  #settle(thread: Worker | undefined, io: EngineIo | undefined, error?: Error): void {
    const pending = this.#pending;
    if (!pending || (thread !== undefined && pending.thread !== thread)) return;
    this.#pending = undefined;
    if (error) pending.reject(error);
    else pending.resolve(io!);
  }

  /**
   * Runs one task; rejects with TaskFailedError (the app threw), CorruptInputError (a checked
   * reduce input is not the bytes its mapper reported), TaskExitedError (the app ended its
   * thread) or AppLoadError (a replacement thread could not import the app).
   */
  async run(job: TaskJob): Promise<EngineIo> {
    if (this.#pending) throw new Error("A task is already running on this runner");
    const request = { ...job, id: this.#nextId++ } as Exclude<TaskRequest, { type: "load" }>;
    if (this.#inProcess) {
      // The engine loads here only in this fallback: with a task thread, the thread loads it.
      const { runMapInputs, runReduce } = await import("./engine.ts");
      const reply = await handleTaskRequest(
        this.#inProcess,
        request,
        runMapInputs,
        runReduce,
        () => this.onProgress?.(),
      );
      if (reply.type === "done") return reply.io;
      throw reply.type === "failed" ? failure(reply) : new TaskFailedError("Task failed");
    }
    if (!this.#thread) await this.#spawn();
    else await this.#ready;
    const thread = this.#thread!;
    return await new Promise<EngineIo>((resolve, reject) => {
      this.#pending = { id: request.id, thread, resolve, reject };
      thread.postMessage(request);
    });
  }

  /**
   * Ends the thread; a task still running is abandoned (its run() rejects with
   * TaskExitedError). A later run() starts a fresh thread.
   */
  close(): void {
    if (this.#thread) this.#drop(this.#thread);
    // A thread still loading the app (one that never finishes, say) will not say so now.
    this.#failReady?.(new TaskExitedError("The task runner was closed"));
    this.#settle(undefined, undefined, new TaskExitedError("The task runner was closed"));
  }
}
