/**
 * The coordinator <-> worker RPC messages and their validators. Both directions are `unknown`
 * until checked here: a confused or hostile peer gets an error, never a corrupted task table.
 */
import type { Assignment, MapOutput, TaskKind } from "./scheduler.ts";
import { parseLocalInput, parseMapPieces } from "./local_input.ts";
import { type LocalStage, parseLocalStage } from "./local_output.ts";
import { isAbsolute } from "node:path";

/** Worker -> coordinator: "give me something to do"; params AskParams, result Assignment. */
export const RPC_ASK = "mr.ask";
/** Worker -> coordinator: the outcome of one attempt; params ReportParams, result ReportResult. */
export const RPC_REPORT = "mr.report";

/**
 * Worker -> coordinator, at start and then every heartbeatMs: "I am alive, and I serve my map
 * output at this address"; params HeartbeatParams, result HeartbeatResult.
 */
export const RPC_HEARTBEAT = "mr.heartbeat";
/**
 * Reducer -> coordinator: where the outputs of the maps are; params LocationsParams, result
 * LocationsResult.
 */
export const RPC_LOCATIONS = "mr.locations";

/** Params of mr.heartbeat. */
export interface HeartbeatParams {
  workerId: string;
  /** host:port where the worker serves its map output. */
  address: string;
  /** The attempt this worker runs made progress since its previous heartbeat. */
  progress?: { kind: TaskKind; task: number; attempt: number };
}

/** Result of mr.heartbeat: the job's identity and how to reach the coordinator's data server. */
export interface HeartbeatResult {
  /** The job's id: part of every data URL. */
  job: string;
  /** The job's secret: every data request carries it as a bearer token. */
  token: string;
  /** Host of the coordinator's data server; "" means the host the worker dialed. */
  dataHost: string;
  dataPort: number;
  /** How often the coordinator wants to hear from the worker. */
  heartbeatMs: number;
  /** True once the job is done or failed: a worker abandons what it runs and asks again. */
  over: boolean;
}

/** Params of mr.locations. */
export interface LocationsParams {
  workerId: string;
  /** The reduce task asking. */
  task: number;
}

/** Where map m's partition for one reduce task is, and its size and CRC-32C. */
export interface MapLocation {
  map: number;
  attempt: number;
  address: string;
  size: number;
  crc: number;
  /** The partitions' directory on the mapper's machine (MapOutput.dir), when it said. */
  dir?: string;
}

/** Result of mr.locations: one entry per map, null while that map's output is not available. */
export interface LocationsResult {
  maps: (MapLocation | null)[];
}

/**
 * Result of mr.ask: the scheduler's assignment; a reduce also says where its inputs are (as
 * mr.locations would, saving that round trip) and, with workers on the coordinator's machine,
 * where to stage its output for a commit by rename (mr/local_output.ts).
 */
export type TaskAssignment =
  | Exclude<Assignment, { type: "reduce" }>
  | (Extract<Assignment, { type: "reduce" }> & {
    maps?: (MapLocation | null)[];
    stage?: LocalStage;
  });

/** Params of mr.ask. */
export interface AskParams {
  workerId: string;
  /**
   * When nothing is ready: hold the ask up to this long (ms) and answer as soon as a task is,
   * or the job is over (a long poll). Absent or 0: answer "wait" at once, and the worker polls.
   * The coordinator holds at most MAX_ASK_HOLD_MS.
   */
  waitMs?: number;
}

/**
 * The longest a coordinator holds an ask (AskParams.waitMs): well inside the worker's RPC
 * timeout (5 s), with room for a loaded machine's delays either side.
 */
export const MAX_ASK_HOLD_MS = 2000;

/** Params of mr.report. */
export interface ReportParams {
  workerId: string;
  kind: TaskKind;
  task: number;
  attempt: number;
  ok: boolean;
  /** The exception, when ok is false. */
  error?: string;
  bytesRead: number;
  bytesWritten: number;
  /** Bytes a reduce fetched from mappers (shuffle bytes). */
  bytesFetched?: number;
  /** A map's output: where it is served and each partition's size and CRC-32C. */
  output?: MapOutput;
  /** The attempt could not run for reasons that are not the app's: give the task back. */
  release?: boolean;
  /** With release: the map output this reduce could not fetch. */
  fetchFailed?: { map: number; attempt: number; refused: boolean };
  /** A reduce's output is staged at its assignment's `stage` (bytesWritten long), not uploaded. */
  staged?: boolean;
}

/** Result of mr.report: whether this report completed the task (false for a duplicate). */
export interface ReportResult {
  accepted: boolean;
}

const MAX_ID_LENGTH = 256;
const MAX_ADDRESS_LENGTH = 300;
const MAX_ERROR_LENGTH = 4096;
const MAX_PATH_LENGTH = 4096;
/** The coordinator's --reduce maximum. */
const MAX_PARTITIONS = 100_000;

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Invalid ${what}: expected an object`);
  }
  return value as Record<string, unknown>;
}

function count(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Invalid ${what}: expected a non-negative integer`);
  }
  return value;
}

function workerIdOf(value: unknown): string {
  if (typeof value !== "string" || value === "" || value.length > MAX_ID_LENGTH) {
    throw new TypeError(`Invalid workerId: expected a string of 1 to ${MAX_ID_LENGTH} characters`);
  }
  return value;
}

function addressOf(value: unknown, what: string): string {
  if (
    typeof value !== "string" || value.length > MAX_ADDRESS_LENGTH || !/^\S+:\d{1,5}$/.test(value)
  ) {
    throw new TypeError(`Invalid ${what}: expected HOST:PORT`);
  }
  return value;
}

function pathOf(value: unknown, what: string): string {
  if (typeof value !== "string" || !isAbsolute(value) || value.length > MAX_PATH_LENGTH) {
    throw new TypeError(`Invalid ${what}: expected an absolute path`);
  }
  return value;
}

function counts(value: unknown, what: string, max: number): number[] {
  if (!Array.isArray(value) || value.length > max) {
    throw new TypeError(`Invalid ${what}: expected an array of at most ${max} integers`);
  }
  return value.map((v, i) => count(v, `${what}[${i}]`));
}

/** Validates mr.heartbeat params; throws TypeError naming the bad field. */
export function parseHeartbeatParams(params: unknown): HeartbeatParams {
  const p = record(params, "mr.heartbeat params");
  const heartbeat: HeartbeatParams = {
    workerId: workerIdOf(p.workerId),
    address: addressOf(p.address, "address"),
  };
  if (p.progress !== undefined && p.progress !== null) {
    const g = record(p.progress, "progress");
    if (g.kind !== "map" && g.kind !== "reduce") {
      throw new TypeError('Invalid progress.kind: expected "map" or "reduce"');
    }
    heartbeat.progress = {
      kind: g.kind,
      task: count(g.task, "progress.task"),
      attempt: count(g.attempt, "progress.attempt"),
    };
  }
  return heartbeat;
}

/** Validates mr.locations params; throws TypeError naming the bad field. */
export function parseLocationsParams(params: unknown): LocationsParams {
  const p = record(params, "mr.locations params");
  return { workerId: workerIdOf(p.workerId), task: count(p.task, "task") };
}

/** Validates an mr.heartbeat result on the worker side. */
export function parseHeartbeatResult(value: unknown): HeartbeatResult {
  const r = record(value, "mr.heartbeat result");
  if (typeof r.job !== "string" || !/^[0-9a-f]{8,64}$/.test(r.job)) {
    throw new TypeError("Invalid job: expected a hex id");
  }
  if (typeof r.token !== "string" || !/^[A-Za-z0-9_-]{16,256}$/.test(r.token)) {
    throw new TypeError("Invalid token");
  }
  if (typeof r.dataHost !== "string" || r.dataHost.length > MAX_ADDRESS_LENGTH) {
    throw new TypeError("Invalid dataHost: expected a host name");
  }
  return {
    job: r.job,
    token: r.token,
    dataHost: r.dataHost,
    dataPort: count(r.dataPort, "dataPort"),
    heartbeatMs: Math.max(10, count(r.heartbeatMs, "heartbeatMs")),
    over: r.over === true,
  };
}

/** Validates an mr.locations result on the worker side. */
export function parseLocationsResult(value: unknown, nMap: number): LocationsResult {
  const r = record(value, "mr.locations result");
  return { maps: mapLocations(r.maps, nMap, "mr.locations result") };
}

function mapLocations(value: unknown, nMap: number, what: string): (MapLocation | null)[] {
  if (!Array.isArray(value) || value.length !== nMap) {
    throw new TypeError(`Invalid ${what}: expected ${nMap} entries`);
  }
  return value.map((entry, m) => {
    if (entry === null) return null;
    const e = record(entry, `location ${m}`);
    return {
      map: m,
      attempt: count(e.attempt, "attempt"),
      address: addressOf(e.address, "address"),
      size: count(e.size, "size"),
      crc: count(e.crc, "crc"),
      ...(e.dir !== undefined ? { dir: pathOf(e.dir, "dir") } : {}),
    };
  });
}

/** Validates mr.ask params; throws TypeError naming the bad field. */
export function parseAskParams(params: unknown): AskParams {
  const p = record(params, "mr.ask params");
  const ask: AskParams = { workerId: workerIdOf(p.workerId) };
  if (p.waitMs !== undefined && p.waitMs !== null) ask.waitMs = count(p.waitMs, "waitMs");
  return ask;
}

/** Validates mr.report params; throws TypeError naming the bad field. */
export function parseReportParams(params: unknown): ReportParams {
  const p = record(params, "mr.report params");
  if (p.kind !== "map" && p.kind !== "reduce") {
    throw new TypeError('Invalid kind: expected "map" or "reduce"');
  }
  if (typeof p.ok !== "boolean") throw new TypeError("Invalid ok: expected a boolean");
  if (p.error !== undefined && p.error !== null && typeof p.error !== "string") {
    throw new TypeError("Invalid error: expected a string");
  }
  const report: ReportParams = {
    workerId: workerIdOf(p.workerId),
    kind: p.kind,
    task: count(p.task, "task"),
    attempt: count(p.attempt, "attempt"),
    ok: p.ok,
    bytesRead: count(p.bytesRead, "bytesRead"),
    bytesWritten: count(p.bytesWritten, "bytesWritten"),
  };
  if (p.bytesFetched !== undefined) report.bytesFetched = count(p.bytesFetched, "bytesFetched");
  if (p.output !== undefined && p.output !== null) {
    const o = record(p.output, "output");
    const sizes = counts(o.sizes, "output.sizes", MAX_PARTITIONS);
    const crcs = counts(o.crcs, "output.crcs", MAX_PARTITIONS);
    if (sizes.length !== crcs.length) throw new TypeError("Invalid output: sizes and crcs differ");
    report.output = { address: addressOf(o.address, "output.address"), sizes, crcs };
    if (o.dir !== undefined) report.output.dir = pathOf(o.dir, "output.dir");
  }
  if (p.release === true) report.release = true;
  if (p.staged === true) report.staged = true;
  if (p.fetchFailed !== undefined && p.fetchFailed !== null) {
    const f = record(p.fetchFailed, "fetchFailed");
    report.fetchFailed = {
      map: count(f.map, "fetchFailed.map"),
      attempt: count(f.attempt, "fetchFailed.attempt"),
      refused: f.refused === true,
    };
  }
  if (!p.ok) {
    const error = typeof p.error === "string" && p.error !== "" ? p.error : "Unknown error";
    report.error = error.length > MAX_ERROR_LENGTH
      ? `${error.slice(0, MAX_ERROR_LENGTH)}...`
      : error;
  }
  return report;
}

/** Validates an mr.ask result on the worker side; throws TypeError on anything unexpected. */
export function parseAssignment(value: unknown): TaskAssignment {
  const a = record(value, "mr.ask result");
  switch (a.type) {
    case "wait":
    case "done":
      return { type: a.type };
    case "failed":
      return { type: "failed", error: typeof a.error === "string" ? a.error : "Job failed" };
    case "map": {
      if (typeof a.file !== "string" || a.file === "") {
        throw new TypeError("Invalid map assignment: expected a file name");
      }
      const nReduce = count(a.nReduce, "nReduce");
      if (nReduce < 1) throw new TypeError("Invalid nReduce: expected at least 1");
      const input = parseLocalInput(a.input);
      const pieces = parseMapPieces(a.pieces);
      return {
        type: "map",
        task: count(a.task, "task"),
        attempt: count(a.attempt, "attempt"),
        file: a.file,
        nReduce,
        ...(input ? { input } : {}),
        ...(pieces ? { pieces } : {}),
      };
    }
    case "reduce": {
      const nMap = count(a.nMap, "nMap");
      const stage = parseLocalStage(a.stage);
      return {
        type: "reduce",
        task: count(a.task, "task"),
        attempt: count(a.attempt, "attempt"),
        nMap,
        ...(a.maps !== undefined ? { maps: mapLocations(a.maps, nMap, "maps") } : {}),
        ...(stage ? { stage } : {}),
      };
    }
    default:
      throw new TypeError(`Invalid mr.ask result: unknown type ${JSON.stringify(a.type)}`);
  }
}

/** URL path of a map attempt's partition on a worker's data server. */
export function partitionPath(job: string, map: number, attempt: number, reduce: number): string {
  return `/mr/${job}/map/${map}/${attempt}/${reduce}`;
}

/** URL path of a map task's split on the coordinator's data server. */
export function splitPath(job: string, map: number): string {
  return `/mr/${job}/split/${map}`;
}

/** URL path a reduce attempt uploads its output to on the coordinator's data server. */
export function outputPath(job: string, reduce: number, attempt: number): string {
  return `/mr/${job}/output/${reduce}/${attempt}`;
}

/** Header carrying the byte length of an upload (the body itself is streamed). */
export const LENGTH_HEADER = "x-raftmr-length";
