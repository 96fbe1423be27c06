/**
 * `raftmr worker --cluster`: a MapReduce worker of the Raft cluster's job service. It finds the
 * leader among the peers' native addresses and follows it across leader changes, works on any
 * job, and waits between jobs. A job carries its app: the worker fetches the source once per job,
 * writes it to a temporary file and loads it on a task thread (mr/task_runner.ts).
 *
 * Data flow: inputs and the output directory are on a mount every worker shares (as Hadoop's are
 * on HDFS), so a map reads its split straight from the input file; map output stays in this
 * worker's data directory and is served to reducers (mr/shuffle_server.ts), who check its length
 * and CRC-32C. A reduce writes its output under a temporary name in the output directory and
 * renames it to mr-out-<r> itself: a duplicate attempt renames identical content (apps are
 * deterministic), so a later rename of a duplicate is harmless; only the first attempt whose
 * commit goes through the log counts for the job.
 */
import type { PeerPortAccess } from "../cli/client_security.ts";
import { clientHello } from "../net/handshake.ts";
import { join } from "node:path";
import { AppLoadError } from "./app.ts";
import { serveHttp } from "../net/http_listener.ts";
import { defaultConnectionCap } from "../net/conn_gate.ts";
import { ConnectionLostError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import {
  isNotLeader,
  type JobAssignment,
  JOBS_APP,
  JOBS_ASK,
  JOBS_HEARTBEAT,
  JOBS_REPORT,
  parseJobAssignment,
  parseJobsHeartbeat,
} from "./job_rpc.ts";
import { outputName } from "./partition.ts";
import { partitionPath, type ReportParams } from "./protocol.ts";
import {
  handleShuffleRequest,
  jobDir,
  mapAttemptDir,
  partitionFileName,
} from "./shuffle_server.ts";
import { TaskFailedError, TaskRunner } from "./task_runner.ts";
import {
  fetchToFile,
  fileChecksum,
  IntegrityError,
  rangeStream,
  TransferError,
} from "./transfer.ts";
import { describeError, markWorking, newWorkerStatus, type WorkerStatus } from "./worker.ts";
import { errorMessage } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";

/** How a cluster worker finds the peers and where it keeps and serves its data. */
export interface ClusterWorkerOptions {
  /** The peers' native addresses, host:port each. */
  cluster: string[];
  /** How to pass the peer ports' handshake (cli/client_security.ts); default: no token. */
  access?: Pick<PeerPortAccess, "hello" | "dial">;
  /** Intermediate data lives here (default: a fresh temporary directory, removed at exit). */
  dataDir?: string;
  /** Where map output is served to reducers (default 127.0.0.1, any free port). */
  listen?: { hostname: string; port: number };
  /** host:port other machines reach the data server at (default: the bound address). */
  advertise?: string;
  /** Pause between asks while there is nothing to do (default 100 ms). */
  pollMs?: number;
  log?: (line: string) => void;
  /** Aborted to stop the worker (SIGTERM): its current task is handed back. */
  signal?: AbortSignal;
  /** Kept up to date as the worker runs, for its optional status endpoint (--http). */
  status?: WorkerStatus;
}

/** The task stopped because the worker is shutting down. */
class Stopped extends Error {}
/** A reduce could not fetch one map's output. */
class FetchFailure extends Error {
  constructor(
    readonly map: number,
    readonly attempt: number,
    readonly refused: boolean,
    m: string,
  ) {
    super(m);
  }
}
/** A reduce was handed out before every map output was available. */
class NotReady extends Error {}

const CALL_TIMEOUT_MS = 5000;
const TRANSFER_TRIES = 3;

function workerId(): string {
  let host = "localhost";
  try {
    host = Deno.hostname();
  } catch {
    // The pid alone still tells local workers apart.
  }
  return `${host}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/** Calls whichever peer leads: follows "not leader" hints, rotates on connection errors. */
class LeaderLink {
  readonly #endpoints: string[];
  readonly #clients = new Map<string, RpcClient>();
  readonly #signal?: AbortSignal;
  #current = 0;

  readonly #access: Pick<PeerPortAccess, "hello" | "dial">;

  constructor(
    endpoints: string[],
    signal?: AbortSignal,
    access: Pick<PeerPortAccess, "hello" | "dial"> = { hello: clientHello() },
  ) {
    this.#endpoints = [...endpoints];
    this.#signal = signal;
    this.#access = access;
  }

  #client(endpoint: string): RpcClient {
    let client = this.#clients.get(endpoint);
    if (!client) {
      const at = endpoint.lastIndexOf(":");
      const hostname = endpoint.slice(0, at).replace(/^\[|\]$/g, "");
      client = new RpcClient({ hostname, port: Number(endpoint.slice(at + 1)) }, {
        timeoutMs: CALL_TIMEOUT_MS,
        maxBackoffMs: 250,
        hello: this.#access.hello,
        dial: this.#access.dial,
      });
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  /** Calls `method` on the leader, retrying (forever, until stopped) until one answers. */
  async call(method: string, params: unknown): Promise<unknown> {
    let pause = 20;
    for (;;) {
      if (this.#signal?.aborted) throw new Stopped("Worker is stopping");
      const endpoint = this.#endpoints[this.#current];
      try {
        const reply = await this.#client(endpoint).call(method, params);
        if (!isNotLeader(reply)) return reply;
        const hint = reply.hint;
        if (hint !== "" && hint !== endpoint) {
          if (!this.#endpoints.includes(hint)) this.#endpoints.push(hint);
          this.#current = this.#endpoints.indexOf(hint);
          continue;
        }
      } catch (err) {
        if (!(err instanceof ConnectionLostError || err instanceof RpcTimeoutError)) throw err;
      }
      this.#current = (this.#current + 1) % this.#endpoints.length;
      await sleep(pause);
      pause = Math.min(500, pause * 2);
    }
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
  }
}

/** Runs a cluster worker until `signal` aborts; returns the exit code (0). */
export async function runClusterWorker(options: ClusterWorkerOptions): Promise<number> {
  const log = options.log ?? ((line: string) => console.error(line));
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "raftmr-worker-" });
  await Deno.mkdir(dataDir, { recursive: true });
  /** Jobs whose map output this worker serves: id -> token. */
  const served = new Map<string, string>();
  const listen = options.listen ?? { hostname: "127.0.0.1", port: 0 };
  const server = serveHttp({
    hostname: listen.hostname,
    port: listen.port,
    maxConnections: defaultConnectionCap(),
    handler: (request) => {
      const id = /^\/mr\/([0-9a-f]{8,64})\//.exec(new URL(request.url).pathname)?.[1];
      const token = id === undefined ? undefined : served.get(id);
      return handleShuffleRequest(
        request,
        dataDir,
        id && token ? { id, token } : undefined,
      );
    },
  });
  const bound = server.addr;
  const address = options.advertise ?? `${bound.hostname}:${bound.port}`;
  const loop = new ClusterWorkerLoop(options, dataDir, address, served, log);
  try {
    return await loop.run();
  } finally {
    loop.close();
    await server.shutdown();
    if (ownDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** The ask -> run -> report loop with its heartbeat timer. */
class ClusterWorkerLoop {
  readonly #options: ClusterWorkerOptions;
  readonly #dataDir: string;
  readonly #address: string;
  readonly #served: Map<string, string>;
  readonly #log: (line: string) => void;
  readonly #link: LeaderLink;
  readonly #id = workerId();
  readonly #status: WorkerStatus;
  readonly #apps = new Map<string, TaskRunner>();
  #heartbeat?: ReturnType<typeof setTimeout>;
  #heartbeatMs = 1000;
  /** Rejects with Stopped once the worker is told to stop: races the running task. */
  readonly #aborted: Promise<never>;

  constructor(
    options: ClusterWorkerOptions,
    dataDir: string,
    address: string,
    served: Map<string, string>,
    log: (line: string) => void,
  ) {
    this.#options = options;
    this.#dataDir = dataDir;
    this.#address = address;
    this.#served = served;
    this.#log = log;
    this.#link = new LeaderLink(options.cluster, options.signal, options.access);
    this.#status = options.status ?? newWorkerStatus(options.cluster.join(","), "(each job's)");
    this.#status.id = this.#id;
    this.#status.address = address;
    this.#aborted = new Promise((_, reject) => {
      const stop = () => reject(new Stopped("Worker is stopping"));
      if (options.signal?.aborted) stop();
      else options.signal?.addEventListener("abort", stop, { once: true });
    });
    this.#aborted.catch(() => {});
  }

  get #stopping(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  async #beat(): Promise<void> {
    try {
      const reply = parseJobsHeartbeat(
        await this.#link.call(JOBS_HEARTBEAT, { workerId: this.#id, address: this.#address }),
      );
      this.#heartbeatMs = reply.heartbeatMs;
      this.#status.lastHeartbeat = Date.now();
      const running = new Map(reply.jobs.map((j) => [j.id, j.token]));
      for (const [id, token] of running) this.#served.set(id, token);
      // A job that is over (done, failed, cancelled, or forgotten): drop its data and app.
      for (const id of [...this.#served.keys()]) {
        if (running.has(id)) continue;
        this.#served.delete(id);
        this.#apps.get(id)?.close();
        this.#apps.delete(id);
        await Deno.remove(jobDir(this.#dataDir, id), { recursive: true }).catch(() => {});
      }
    } catch (err) {
      if (!(err instanceof Stopped)) this.#log(`worker: heartbeat failed: ${errorMessage(err)}`);
    }
  }

  #scheduleBeat(): void {
    if (this.#stopping) return;
    this.#heartbeat = setTimeout(async () => {
      await this.#beat();
      this.#scheduleBeat();
    }, this.#heartbeatMs);
  }

  async run(): Promise<number> {
    const pollMs = this.#options.pollMs ?? 100;
    await this.#beat();
    this.#scheduleBeat();
    this.#log(`worker: ${this.#id} serving map output at ${this.#address}`);
    while (!this.#stopping) {
      let assignment: JobAssignment;
      try {
        assignment = parseJobAssignment(await this.#link.call(JOBS_ASK, { workerId: this.#id }));
      } catch (err) {
        if (err instanceof Stopped) break;
        this.#log(`worker: ask failed: ${errorMessage(err)}`);
        await sleep(pollMs);
        continue;
      }
      if (assignment.type === "wait") {
        this.#status.state = "waiting";
        await sleep(pollMs);
        continue;
      }
      markWorking(this.#status, assignment);
      await this.#runTask(assignment);
      this.#status.current = undefined;
    }
    this.#status.state = "exited";
    return 0;
  }

  async #runTask(assignment: Exclude<JobAssignment, { type: "wait" }>): Promise<void> {
    this.#served.set(assignment.job, assignment.token);
    const report: ReportParams & { job: string } = {
      workerId: this.#id,
      job: assignment.job,
      kind: assignment.type,
      task: assignment.task,
      attempt: assignment.attempt,
      ok: true,
      bytesRead: 0,
      bytesWritten: 0,
    };
    try {
      const app = await this.#app(assignment.job);
      const work = assignment.type === "map"
        ? this.#map(app, assignment, report)
        : this.#reduce(app, assignment);
      await Promise.race([work, this.#aborted]);
      this.#status.tasksDone++;
      this.#status.bytesRead += report.bytesRead;
      this.#status.bytesWritten += report.bytesWritten;
    } catch (err) {
      report.ok = false;
      report.error = err instanceof TaskFailedError ? err.message : describeError(err);
      if (err instanceof FetchFailure) {
        report.release = true;
        report.fetchFailed = { map: err.map, attempt: err.attempt, refused: err.refused };
      } else if (!(err instanceof TaskFailedError || err instanceof AppLoadError)) {
        // Not the app's fault (stopping, a map output not ready, a transfer, an app that ended
        // its thread): the task goes back without counting as a failure.
        report.release = true;
      } else {
        this.#status.tasksFailed++;
      }
      this.#log(
        `worker: job ${assignment.job} ${assignment.type} task ${assignment.task} ` +
          `${report.release ? "handed back" : "failed"}: ${report.error}`,
      );
    }
    try {
      if (this.#stopping) {
        // SIGTERM: hand the task back at once (bounded), so another worker takes it.
        await Promise.race([this.#link.call(JOBS_REPORT, report), sleep(1000)]).catch(() => {});
      } else {
        await this.#link.call(JOBS_REPORT, report);
      }
    } catch (err) {
      if (!(err instanceof Stopped)) this.#log(`worker: report failed: ${errorMessage(err)}`);
    }
  }

  async #app(job: string): Promise<TaskRunner> {
    const known = this.#apps.get(job);
    if (known) return known;
    const reply = await this.#link.call(JOBS_APP, { job }) as { source?: unknown };
    if (typeof reply?.source !== "string") throw new TypeError("Invalid app reply");
    const dir = jobDir(this.#dataDir, job);
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, "app.js");
    await Deno.writeTextFile(path, reply.source);
    const runner = await TaskRunner.start(path);
    this.#apps.set(job, runner);
    return runner;
  }

  async #map(
    app: TaskRunner,
    a: Extract<JobAssignment, { type: "map" }>,
    report: ReportParams,
  ): Promise<void> {
    const dir = jobDir(this.#dataDir, a.job);
    await Deno.mkdir(dir, { recursive: true });
    const splitFile = join(dir, `split-${a.task}-a${a.attempt}`);
    // The split is read from the shared mount: bytes [offset, offset + length) of the input.
    const out = await Deno.open(splitFile, { write: true, create: true, truncate: true });
    await (await rangeStream(a.split.file, a.split.offset, a.split.length)).pipeTo(out.writable);
    const final = mapAttemptDir(this.#dataDir, a.job, a.task, a.attempt);
    const tmp = `${final}.tmp`;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await Deno.mkdir(tmp, { recursive: true });
    try {
      const io = await app.run({
        type: "map",
        filename: a.split.file,
        splitPath: splitFile,
        nReduce: a.nReduce,
        dir: tmp,
      });
      const sizes: number[] = [];
      const crcs: number[] = [];
      for (let r = 0; r < a.nReduce; r++) {
        const sum = await fileChecksum(join(tmp, partitionFileName(r)));
        sizes.push(sum.length);
        crcs.push(sum.crc);
      }
      await Deno.remove(final, { recursive: true }).catch(() => {});
      await Deno.rename(tmp, final);
      report.output = { address: this.#address, sizes, crcs };
      report.bytesRead = io.bytesRead;
      report.bytesWritten = io.bytesWritten;
    } catch (err) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw err;
    } finally {
      await Deno.remove(splitFile).catch(() => {});
    }
  }

  async #reduce(app: TaskRunner, a: Extract<JobAssignment, { type: "reduce" }>): Promise<void> {
    const missing = a.maps.findIndex((location) => location === null);
    if (missing >= 0) throw new NotReady(`The output of map task ${missing} is not available`);
    const dir = join(jobDir(this.#dataDir, a.job), `reduce-${a.task}-a${a.attempt}`);
    await Deno.mkdir(dir, { recursive: true });
    try {
      const inputs: string[] = [];
      for (const location of a.maps) {
        const { map, attempt, address, size, crc } = location!;
        const input = join(dir, `in-${map}`);
        const url = `http://${address}${partitionPath(a.job, map, attempt, a.task)}`;
        try {
          await this.#withRetries(() => fetchToFile(url, a.token, input, { length: size, crc }));
        } catch (err) {
          const refused = err instanceof TransferError && err.refused;
          throw new FetchFailure(map, attempt, refused, describeError(err));
        }
        inputs.push(input);
      }
      const local = join(dir, "out");
      await app.run({ type: "reduce", inputs, output: local });
      // Temporary name in the output directory, then rename: readers never see half a file.
      const tmp = join(a.output, `.${outputName(a.task)}.${a.job}.a${a.attempt}.tmp`);
      await Deno.copyFile(local, tmp);
      await Deno.rename(tmp, join(a.output, outputName(a.task)));
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  async #withRetries<T>(transfer: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await transfer();
      } catch (err) {
        const retry = err instanceof IntegrityError ||
          (err instanceof TransferError && (err.status === undefined || err.status >= 500));
        if (!retry || attempt >= TRANSFER_TRIES || this.#stopping) throw err;
        await sleep(100 * attempt);
      }
    }
  }

  close(): void {
    clearTimeout(this.#heartbeat);
    for (const app of this.#apps.values()) app.close();
    this.#link.close();
  }
}
