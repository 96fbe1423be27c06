/**
 * The job service as one `serve` peer hosts it: the worker RPCs on the peer port (answered by the
 * leader's JobService, refused with a hint elsewhere), and the client operations behind
 * /v1/mr/jobs (mr/job_http.ts). Any peer accepts any request: a follower forwards a command to
 * the leader over the peer connection (method mrjobs.forward) and the leader proposes it; reads
 * go to the leader too, since only it knows the running attempts, and fall back to this peer's
 * copy of the table when the leader cannot be reached.
 */
import type { RpcClient, RpcServer } from "../net/rpc.ts";
import { Deadlines } from "../net/deadlines.ts";
import {
  decodeJobCommand,
  encodeJobCommand,
  isJobCommand,
  type JobCommand,
} from "./job_commands.ts";
import {
  isNotLeader,
  JOBS_APP,
  JOBS_ASK,
  JOBS_CLIENT,
  JOBS_FORWARD,
  JOBS_HEARTBEAT,
  JOBS_REPORT,
  type NotLeaderReply,
  parseJobId,
  parseJobReport,
} from "./job_rpc.ts";
import { JobLeadership, type LeaderState } from "./job_leadership.ts";
import { JobService, type JobServiceOptions } from "./job_service.ts";
import type { JobApplyResult, JobStateMachine } from "./job_state_machine.ts";
import { JobSubmitError, prepareSubmit } from "./job_submit.ts";
import { type JobView, jobView } from "./job_view.ts";
import { parseAskParams, parseHeartbeatParams } from "./protocol.ts";
import { errorMessage } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";

/** What a peer lends its job service. */
export interface JobPeerHost {
  table: JobStateMachine;
  rpc: RpcServer;
  /** Whether this node leads now, its term, and how far its log is written and applied. */
  role(): LeaderState & { leader: number };
  /** Proposes bytes to this node's Raft (rejects with NotLeaderError elsewhere). */
  propose(data: Uint8Array): Promise<{ result: unknown }>;
  /** The RPC client of peer `id`. */
  client(id: number): RpcClient | undefined;
  /** host:port of peer `id`'s native port, for hints. */
  peerAddress(id: number): string | undefined;
  requestTimeoutMs: number;
  /** A directory this peer may write and read (under its data directory), for app checks. */
  scratchDir: string;
  log(line: string): void;
}

/** A job request failed: `status` is the HTTP status that says why. */
export class JobRequestError extends Error {
  readonly status: 400 | 404 | 413 | 503 | 504;
  constructor(status: 400 | 404 | 413 | 503 | 504, message: string) {
    super(message);
    this.name = "JobRequestError";
    this.status = status;
  }
}

const LEADER_POLL_MS = 20;

/** The job service of one peer. */
export class JobPeer {
  readonly #host: JobPeerHost;
  readonly #service: JobService;
  readonly #deadlines = new Deadlines();
  readonly #leadership = new JobLeadership();

  constructor(host: JobPeerHost, options: JobServiceOptions = {}) {
    this.#host = host;
    this.#service = new JobService({
      table: host.table,
      // A new leader schedules only once its table holds every earlier commit.
      leaderTerm: () => this.#leadership.term(host.role()),
      propose: (command) => this.#proposeHere(command),
      log: host.log,
    }, options);
    const rpc = host.rpc;
    rpc.handle(JOBS_HEARTBEAT, (params) => {
      const { workerId, address } = parseHeartbeatParams(params);
      return this.#service.heartbeat(workerId, address) ?? this.#notLeader();
    });
    rpc.handle(JOBS_ASK, (params) => {
      const { workerId } = parseAskParams(params);
      return this.#service.ask(workerId) ?? this.#notLeader();
    });
    rpc.handle(JOBS_REPORT, async (params) => {
      return await this.#service.report(parseJobReport(params)) ?? this.#notLeader();
    });
    rpc.handle(JOBS_APP, (params) => {
      const job = this.#host.table.job(parseJobId(params));
      if (!job || job.spec.app === "") throw new RangeError("No such running job");
      return { source: job.spec.app };
    });
    rpc.handle(JOBS_FORWARD, (params) => this.#serveForward(params));
    rpc.handle(JOBS_CLIENT, (params) => this.clientCall(params));
  }

  /** Starts the leader-side timers. */
  start(): void {
    this.#service.start();
  }

  /** Stops the timers. */
  close(): void {
    this.#service.close();
    this.#deadlines.close();
  }

  #notLeader(): NotLeaderReply {
    const { leader } = this.#host.role();
    return { leader: false, hint: this.#host.peerAddress(leader) ?? "" };
  }

  /** Proposes on this node, which must lead; resolves with the apply result. */
  async #proposeHere(command: JobCommand): Promise<JobApplyResult> {
    const data = encodeJobCommand(command);
    const deadline = performance.now() + this.#host.requestTimeoutMs;
    const { result } = await this.#deadlines.race(
      this.#host.propose(data),
      deadline,
      () => new JobRequestError(504, "Job command outcome unknown: not applied in time"),
    );
    return result as JobApplyResult;
  }

  /** The leader's side of mrjobs.forward: propose a command, or return views. */
  async #serveForward(raw: unknown): Promise<unknown> {
    if (!this.#host.role().isLeader) return this.#notLeader();
    const p = (raw ?? {}) as Record<string, unknown>;
    if (p.op === "propose") {
      if (!(p.data instanceof Uint8Array) || !isJobCommand(p.data)) {
        throw new TypeError("Invalid forwarded command: expected job command bytes");
      }
      const command = decodeJobCommand(p.data);
      return { leader: true, result: await this.#proposeHere(command) };
    }
    if (p.op === "views") return { leader: true, views: this.#localViews() };
    throw new TypeError(`Invalid forward op: ${String(p.op)}`);
  }

  /** This peer's copy of every job, with running counts when it leads (GET /status). */
  views(): JobView[] {
    return this.#localViews();
  }

  #localViews(): JobView[] {
    return this.#host.table.jobs().map((job) => jobView(job, this.#service.softView(job.id)));
  }

  /** Sends a forward call to whoever leads, retrying across elections until the deadline. */
  async #toLeader(params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const deadline = performance.now() + this.#host.requestTimeoutMs;
    let lastError = "no leader is known";
    while (performance.now() < deadline) {
      const { leader, isLeader } = this.#host.role();
      if (isLeader) {
        return await this.#serveForward(params) as Record<string, unknown>;
      }
      const client = leader === 0 ? undefined : this.#host.client(leader);
      if (client) {
        try {
          const reply = await client.call(JOBS_FORWARD, params, {
            timeoutMs: Math.max(1, deadline - performance.now()),
          });
          if (!isNotLeader(reply)) return reply as Record<string, unknown>;
          lastError = `node ${leader} is no longer the leader`;
        } catch (error) {
          // A proposal that may have reached the leader is not retried: its outcome is unknown.
          if (params.op === "propose") {
            throw new JobRequestError(504, `Job command outcome unknown: ${errorMessage(error)}`);
          }
          lastError = errorMessage(error);
        }
      }
      await sleep(LEADER_POLL_MS);
    }
    throw new JobRequestError(503, `No leader could take the request: ${lastError}`);
  }

  async #propose(command: JobCommand): Promise<JobApplyResult> {
    const reply = await this.#toLeader({ op: "propose", data: encodeJobCommand(command) });
    return reply.result as JobApplyResult;
  }

  /**
   * One client operation as the HTTP API answers it: `{status, body}`; used by the native
   * mrjobs.client method, so `raftmr mr` and HTTP share every rule.
   */
  async clientCall(raw: unknown): Promise<{ status: number; body: unknown }> {
    const p = (raw ?? {}) as Record<string, unknown>;
    const id = typeof p.id === "string" ? p.id : "";
    try {
      switch (p.op) {
        case "submit":
          return { status: 201, body: { id: await this.submit(p.job) } };
        case "list":
          return { status: 200, body: { jobs: await this.list() } };
        case "get":
          return { status: 200, body: await this.get(id) };
        case "cancel":
          return { status: 200, body: await this.cancel(id) };
        default:
          return { status: 400, body: { error: `Invalid operation: ${String(p.op)}` } };
      }
    } catch (error) {
      const status = error instanceof JobRequestError || error instanceof JobSubmitError
        ? error.status
        : 500;
      return { status, body: { error: errorMessage(error) } };
    }
  }

  /** POST /v1/mr/jobs: validates the request, replicates the job, returns its id. */
  async submit(body: unknown): Promise<string> {
    const command = await prepareSubmit(body, Date.now(), this.#host.scratchDir);
    const result = await this.#propose(command);
    if (!result.ok) throw new JobRequestError(400, result.error);
    return (command as Extract<JobCommand, { kind: "submit" }>).id;
  }

  /** GET /v1/mr/jobs: every job in submission order (the leader's view when reachable). */
  async list(): Promise<JobView[]> {
    try {
      const reply = await this.#toLeader({ op: "views" });
      return reply.views as JobView[];
    } catch {
      return this.#host.table.jobs().map((job) => jobView(job));
    }
  }

  /** GET /v1/mr/jobs/{id}; throws JobRequestError(404) for an unknown id. */
  async get(id: string): Promise<JobView> {
    const view = (await this.list()).find((v) => v.id === id);
    if (!view) throw new JobRequestError(404, `No such job: ${id}`);
    return view;
  }

  /** DELETE /v1/mr/jobs/{id}: cancels a running job; returns its view afterwards. */
  async cancel(id: string): Promise<JobView> {
    await this.get(id); // 404 before anything reaches the log
    const result = await this.#propose({
      kind: "finish",
      time: Date.now(),
      job: id,
      state: "cancelled",
      error: "Cancelled by a client",
    });
    if (!result.ok) throw new JobRequestError(404, result.error);
    return await this.get(id);
  }
}
