/**
 * The state machine a `serve` peer hands to Raft: a small dispatcher over one state machine per
 * service (DESIGN.md "One log, several services"). A command's first byte says whose it is: job
 * commands carry mr/job_commands.ts's tag byte, everything else goes to the KV store, byte for
 * byte as before (so the KV encoding, its results and its tests are unchanged). The KV machine
 * still sees every index (a job command reaches it as an empty no-op entry), so its applied
 * index stays the log's.
 *
 * Snapshots: while the job table is empty the snapshot is the KV snapshot alone, the very bytes
 * a peer wrote before jobs existed. Otherwise it is the tag byte followed by a msgpack array
 * `[version, kvSection, jobSection]`. restore() tells the two apart by the first byte (a KV
 * snapshot is a msgpack array, never 0xC7), so every existing data directory stays readable.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { Entry, StateMachine } from "../raft/types.ts";
import { isJobCommand, JOB_COMMAND_TAG } from "../mr/job_commands.ts";
import type { JobApplyResult, JobStateMachine } from "../mr/job_state_machine.ts";
import type { ApplyResult, KvStateMachine } from "./state_machine.ts";

const SECTIONED_VERSION = 1;
const EMPTY = new Uint8Array(0);
const encoder = new Encoder();
const decoder = new Decoder();

/** Routes each committed entry to the KV store or the job table by its first byte. */
export class ServiceDispatcher implements StateMachine {
  readonly #kv: KvStateMachine;
  readonly #jobs: JobStateMachine;
  readonly #onJobApplied?: (index: number, result: JobApplyResult) => void;

  constructor(
    kv: KvStateMachine,
    jobs: JobStateMachine,
    onJobApplied?: (index: number, result: JobApplyResult) => void,
  ) {
    this.#kv = kv;
    this.#jobs = jobs;
    this.#onJobApplied = onJobApplied;
  }

  /** Applies one entry to the service its first byte names; returns that service's result. */
  apply(entry: Entry): ApplyResult | JobApplyResult | undefined {
    if (!isJobCommand(entry.data)) return this.#kv.apply(entry);
    if (entry.index <= this.#kv.appliedIndex) return undefined;
    // The KV machine skips nothing but keeps counting: an empty entry is its no-op.
    this.#kv.apply({ ...entry, data: EMPTY });
    const result = this.#jobs.applyData(entry.data);
    this.#onJobApplied?.(entry.index, result);
    return result;
  }

  /** The KV snapshot alone while no job exists, else both sections (see the module comment). */
  snapshot(): Uint8Array {
    const kv = this.#kv.snapshot();
    if (this.#jobs.empty) return kv;
    const packed = encoder.encode([SECTIONED_VERSION, kv, this.#jobs.snapshot()]);
    const data = new Uint8Array(packed.length + 1);
    data[0] = JOB_COMMAND_TAG;
    data.set(packed, 1);
    return data;
  }

  /** Restores both services from either snapshot form. */
  restore(data: Uint8Array): void {
    if (data.length === 0 || data[0] !== JOB_COMMAND_TAG) {
      this.#kv.restore(data);
      this.#jobs.restore(EMPTY);
      return;
    }
    const raw = decoder.decode(data.subarray(1));
    if (
      !Array.isArray(raw) || raw.length !== 3 || raw[0] !== SECTIONED_VERSION ||
      !(raw[1] instanceof Uint8Array) || !(raw[2] instanceof Uint8Array)
    ) {
      throw new Error("Cannot restore snapshot: unknown sectioned format");
    }
    this.#kv.restore(raw[1]);
    this.#jobs.restore(raw[2]);
  }
}
