/**
 * The messages between `raftmr worker --cluster` and the peers' job service, on the peers' native
 * RPC port, with their validators. Only the leader schedules: any other peer answers
 * `{ leader: false, hint }` and the worker moves on to the peer the hint names.
 */
import { parseReportParams, type ReportParams } from "./protocol.ts";
import type { SplitSpec } from "./job_commands.ts";

/** Worker -> leader, at start and every heartbeatMs: "I am alive and serve map output here". */
export const JOBS_HEARTBEAT = "mrjobs.heartbeat";
/** Worker -> leader: "give me a task of any job". */
export const JOBS_ASK = "mrjobs.ask";
/** Worker -> leader: the outcome of one attempt. */
export const JOBS_REPORT = "mrjobs.report";
/** Worker -> any peer: a job's app source (from the replicated table). */
export const JOBS_APP = "mrjobs.app";
/**
 * Client -> any peer (`raftmr mr ...` on the native port): params `{op: "submit", job}`,
 * `{op: "list"}`, `{op: "get", id}` or `{op: "cancel", id}`; the reply is `{status, body}` with
 * the HTTP API's status code and JSON body, so both front ends answer alike.
 */
export const JOBS_CLIENT = "mrjobs.client";
/** Peer -> leader: propose a job command a client handed to a follower; or read job views. */
export const JOBS_FORWARD = "mrjobs.forward";

/** A peer that does not lead: where the worker should go instead ("" when unknown). */
export interface NotLeaderReply {
  leader: false;
  hint: string;
}

/** Reply to a heartbeat: how often to beat, and the jobs whose data the worker should keep. */
export interface JobsHeartbeatReply {
  leader: true;
  heartbeatMs: number;
  /** Running jobs with the token of their data requests; data of any other job is dropped. */
  jobs: { id: string; token: string }[];
}

/** One map's output for a reduce: where it is served, its size and CRC-32C. */
export interface JobMapLocation {
  map: number;
  attempt: number;
  address: string;
  size: number;
  crc: number;
}

/** What a worker asking for work is told. */
export type JobAssignment =
  | {
    type: "map";
    job: string;
    /** The bearer token of the job's data requests. */
    token: string;
    task: number;
    attempt: number;
    /** The input's name as map() is told it, and the bytes to read from the shared mount. */
    split: SplitSpec;
    nReduce: number;
  }
  | {
    type: "reduce";
    job: string;
    token: string;
    task: number;
    attempt: number;
    /** One entry per map; null while that map's output is not available. */
    maps: (JobMapLocation | null)[];
    /** The output directory on the shared mount. */
    output: string;
  }
  | { type: "wait" };

/** A worker's report: the standalone coordinator's, plus the job it belongs to. */
export type JobReport = ReportParams & { job: string };

/** Validates mrjobs.report params; throws TypeError naming the bad field. */
export function parseJobReport(raw: unknown): JobReport {
  const job = (raw as Record<string, unknown> | null)?.job;
  if (typeof job !== "string" || !/^[0-9a-f]{8,64}$/.test(job)) {
    throw new TypeError("Invalid job: expected a hex id");
  }
  return { ...parseReportParams(raw), job };
}

/** Validates the job id of mrjobs.app params. */
export function parseJobId(raw: unknown): string {
  const job = (raw as Record<string, unknown> | null)?.job;
  if (typeof job !== "string" || !/^[0-9a-f]{8,64}$/.test(job)) {
    throw new TypeError("Invalid job: expected a hex id");
  }
  return job;
}

/** Whether a reply came from a peer that does not lead. */
export function isNotLeader(reply: unknown): reply is NotLeaderReply {
  return typeof reply === "object" && reply !== null &&
    (reply as Record<string, unknown>).leader === false;
}

function obj(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Invalid ${what}: expected an object`);
  }
  return value as Record<string, unknown>;
}

function nat(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Invalid ${what}: expected a non-negative integer`);
  }
  return value;
}

function str(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "" || value.length > 4096) {
    throw new TypeError(`Invalid ${what}: expected text`);
  }
  return value;
}

/** Validates an mrjobs.ask reply on the worker side; throws TypeError on anything unexpected. */
export function parseJobAssignment(raw: unknown): JobAssignment {
  const a = obj(raw, "mrjobs.ask reply");
  if (a.type === "wait") return { type: "wait" };
  const job = parseJobId(a);
  const token = str(a.token, "token");
  const task = nat(a.task, "task");
  const attempt = nat(a.attempt, "attempt");
  if (a.type === "map") {
    const s = obj(a.split, "split");
    const nReduce = nat(a.nReduce, "nReduce");
    if (nReduce < 1) throw new TypeError("Invalid nReduce: expected at least 1");
    return {
      type: "map",
      job,
      token,
      task,
      attempt,
      split: {
        file: str(s.file, "split.file"),
        offset: nat(s.offset, "split.offset"),
        length: nat(s.length, "split.length"),
      },
      nReduce,
    };
  }
  if (a.type === "reduce") {
    if (!Array.isArray(a.maps)) throw new TypeError("Invalid maps: expected a list");
    return {
      type: "reduce",
      job,
      token,
      task,
      attempt,
      output: str(a.output, "output"),
      maps: a.maps.map((entry, m) => {
        if (entry === null) return null;
        const e = obj(entry, `maps[${m}]`);
        const address = str(e.address, "address");
        if (!/^\S+:\d{1,5}$/.test(address)) {
          throw new TypeError("Invalid address: expected HOST:PORT");
        }
        return {
          map: m,
          attempt: nat(e.attempt, "attempt"),
          address,
          size: nat(e.size, "size"),
          crc: nat(e.crc, "crc"),
        };
      }),
    };
  }
  throw new TypeError(`Invalid mrjobs.ask reply: unknown type ${JSON.stringify(a.type)}`);
}

/** Validates an mrjobs.heartbeat reply on the worker side. */
export function parseJobsHeartbeat(raw: unknown): JobsHeartbeatReply {
  const r = obj(raw, "mrjobs.heartbeat reply");
  if (!Array.isArray(r.jobs)) throw new TypeError("Invalid jobs: expected a list");
  return {
    leader: true,
    heartbeatMs: Math.max(10, nat(r.heartbeatMs, "heartbeatMs")),
    jobs: r.jobs.map((j) => {
      const entry = obj(j, "job");
      return { id: parseJobId({ job: entry.id }), token: str(entry.token, "token") };
    }),
  };
}
