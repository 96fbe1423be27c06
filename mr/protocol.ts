/**
 * The coordinator <-> worker RPC messages and their validators. Both directions are `unknown`
 * until checked here: a confused or hostile peer gets an error, never a corrupted task table.
 */
import type { Assignment, TaskKind } from "./scheduler.ts";

/** Worker -> coordinator: "give me something to do"; params AskParams, result Assignment. */
export const RPC_ASK = "mr.ask";
/** Worker -> coordinator: the outcome of one attempt; params ReportParams, result ReportResult. */
export const RPC_REPORT = "mr.report";

/** Params of mr.ask. */
export interface AskParams {
  workerId: string;
}

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
}

/** Result of mr.report: whether this report completed the task (false for a duplicate). */
export interface ReportResult {
  accepted: boolean;
}

const MAX_ID_LENGTH = 256;
const MAX_ERROR_LENGTH = 4096;

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

/** Validates mr.ask params; throws TypeError naming the bad field. */
export function parseAskParams(params: unknown): AskParams {
  return { workerId: workerIdOf(record(params, "mr.ask params").workerId) };
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
  if (!p.ok) {
    const error = typeof p.error === "string" && p.error !== "" ? p.error : "Unknown error";
    report.error = error.length > MAX_ERROR_LENGTH
      ? `${error.slice(0, MAX_ERROR_LENGTH)}...`
      : error;
  }
  return report;
}

/** Validates an mr.ask result on the worker side; throws TypeError on anything unexpected. */
export function parseAssignment(value: unknown): Assignment {
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
      return {
        type: "map",
        task: count(a.task, "task"),
        attempt: count(a.attempt, "attempt"),
        file: a.file,
        nReduce,
      };
    }
    case "reduce":
      return {
        type: "reduce",
        task: count(a.task, "task"),
        attempt: count(a.attempt, "attempt"),
        nMap: count(a.nMap, "nMap"),
      };
    default:
      throw new TypeError(`Invalid mr.ask result: unknown type ${JSON.stringify(a.type)}`);
  }
}
