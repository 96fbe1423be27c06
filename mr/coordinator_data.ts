/**
 * The coordinator's data endpoints: map tasks read their splits here, reduce tasks upload their
 * outputs here. Splits stream out of the input files with their length and CRC-32C; an upload
 * streams into a hidden staging file in the output directory and is checked against the length
 * and CRC-32C it announces, and the first attempt the scheduler accepts is renamed into
 * `mr-out-<r>`. Every request needs the job's token.
 */
import { join } from "node:path";
import { outputName } from "./partition.ts";
import { LENGTH_HEADER } from "./protocol.ts";
import type { Split } from "./splits.ts";
import {
  bearerToken,
  type Checksum,
  CRC_HEADER,
  crcHex,
  IntegrityError,
  parseCrcHex,
  rangeChecksum,
  rangeStream,
  receiveToFile,
  sameSecret,
} from "./transfer.ts";

const SPLIT_ROUTE = /^\/mr\/([0-9a-f]{8,64})\/split\/(\d{1,9})$/;
const OUTPUT_ROUTE = /^\/mr\/([0-9a-f]{8,64})\/output\/(\d{1,9})\/(\d{1,9})$/;

/** What the data endpoints serve and where uploads go. */
export interface CoordinatorDataOptions {
  job: string;
  token: string;
  splits: Split[];
  nReduce: number;
  outputDir: string;
  /** Whether reduce task r's output is already committed (a late upload is refused). */
  isDone(reduce: number): boolean;
}

function text(status: number, body: string): Response {
  return new Response(`${body}\n`, { status, headers: { "content-type": "text/plain" } });
}

/** Serves splits and receives reduce outputs for one job. */
export class CoordinatorData {
  readonly #options: CoordinatorDataOptions;
  readonly #splitSums = new Map<number, Promise<Checksum>>();
  readonly #staged = new Map<string, string>();
  #stageCounter = 0;
  /** Bytes of splits sent to map tasks. */
  splitBytesServed = 0;
  /** Bytes of reduce outputs received (all attempts). */
  outputBytesReceived = 0;
  /** Uploads refused because their bytes did not match their length or CRC-32C. */
  corruptUploads = 0;
  /** Requests refused (403) for a missing or wrong job token. */
  unauthorized = 0;

  constructor(options: CoordinatorDataOptions) {
    this.#options = options;
  }

  /** True for paths this class answers (everything under /mr/). */
  handles(pathname: string): boolean {
    return pathname.startsWith("/mr/");
  }

  /** Answers one data request. */
  async handle(request: Request): Promise<Response> {
    const token = bearerToken(request);
    if (token === undefined || !sameSecret(token, this.#options.token)) {
      this.unauthorized++;
      return text(403, "Forbidden: a data request needs the job's token");
    }
    const pathname = new URL(request.url).pathname;
    const split = SPLIT_ROUTE.exec(pathname);
    if (split && request.method === "GET" && split[1] === this.#options.job) {
      return await this.#serveSplit(Number(split[2]));
    }
    const output = OUTPUT_ROUTE.exec(pathname);
    if (output && request.method === "PUT" && output[1] === this.#options.job) {
      return await this.#receiveOutput(request, Number(output[2]), Number(output[3]));
    }
    return text(404, "Not found");
  }

  async #serveSplit(index: number): Promise<Response> {
    const split = this.#options.splits[index];
    if (!split) return text(404, `No split ${index}`);
    // The CRC goes out before the body, so the range is read twice; the second read comes from
    // the page cache, and a split is computed once however many attempts fetch it.
    let sum = this.#splitSums.get(index);
    if (!sum) {
      sum = rangeChecksum(split.path, split.offset, split.length);
      this.#splitSums.set(index, sum);
      sum.catch(() => this.#splitSums.delete(index));
    }
    const { length, crc } = await sum;
    if (length !== split.length) {
      return text(500, `Input ${split.file} changed size since the job started`);
    }
    this.splitBytesServed += length;
    return new Response(await rangeStream(split.path, split.offset, split.length), {
      headers: {
        "content-length": String(length),
        [CRC_HEADER]: crcHex(crc),
        "content-type": "application/octet-stream",
      },
    });
  }

  async #receiveOutput(request: Request, reduce: number, attempt: number): Promise<Response> {
    if (reduce >= this.#options.nReduce) return text(404, `No reduce task ${reduce}`);
    if (this.#options.isDone(reduce)) {
      await request.body?.cancel();
      return text(409, `Reduce task ${reduce} is already done`);
    }
    const lengthHeader = request.headers.get(LENGTH_HEADER);
    const length = lengthHeader !== null && /^\d{1,15}$/.test(lengthHeader)
      ? Number(lengthHeader)
      : undefined;
    const crc = parseCrcHex(request.headers.get(CRC_HEADER));
    if (length === undefined || crc === undefined || request.body === null) {
      await request.body?.cancel();
      return text(400, `An upload needs ${LENGTH_HEADER} and ${CRC_HEADER} headers and a body`);
    }
    const tmp = join(
      this.#options.outputDir,
      `.${outputName(reduce)}.a${attempt}.${Deno.pid}.${++this.#stageCounter}.tmp`,
    );
    try {
      await receiveToFile(request.body, tmp, { length, crc }, true);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      this.corruptUploads++;
      return text(422, err.message);
    }
    this.outputBytesReceived += length;
    const key = `${reduce}:${attempt}`;
    const previous = this.#staged.get(key);
    if (previous) await Deno.remove(previous).catch(() => {});
    this.#staged.set(key, tmp);
    return text(200, "Staged");
  }

  /** Whether an upload of this attempt is staged. */
  staged(reduce: number, attempt: number): boolean {
    return this.#staged.has(`${reduce}:${attempt}`);
  }

  /**
   * Renames the staged upload of (reduce, attempt) into `mr-out-<reduce>`, synchronously so no
   * other report can interleave; the caller fsyncs the directory. Returns false if none.
   */
  commit(reduce: number, attempt: number): boolean {
    const key = `${reduce}:${attempt}`;
    const tmp = this.#staged.get(key);
    if (tmp === undefined) return false;
    this.#staged.delete(key);
    Deno.renameSync(tmp, join(this.#options.outputDir, outputName(reduce)));
    return true;
  }

  /** Removes every staged upload of reduce task `reduce` (its output is final). */
  async discard(reduce?: number): Promise<void> {
    const removals: Promise<void>[] = [];
    for (const [key, tmp] of this.#staged) {
      if (reduce !== undefined && !key.startsWith(`${reduce}:`)) continue;
      this.#staged.delete(key);
      removals.push(Deno.remove(tmp).catch(() => {}));
    }
    await Promise.all(removals);
  }
}
