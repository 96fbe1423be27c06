/**
 * A worker's data server: serves the partition files of its completed map attempts to reducers
 * (MapReduce §3.1: map output stays on the mapper's disk). Only requests carrying the job's token
 * get data; a path is built from the job id and three integers parsed from the URL, never from
 * a name that came over the network, so no request reaches outside the worker's data directory.
 */
import { join } from "node:path";
import { partitionFileName } from "./partition.ts";
import { type HttpListener, serveHttp } from "../net/http_listener.ts";
import { defaultConnectionCap } from "../net/conn_gate.ts";
import { bearerToken, sameSecret } from "./transfer.ts";

/** The job a worker serves: its id and token (undefined until the first heartbeat reply). */
export interface ServedJob {
  id: string;
  token: string;
}

// Also exported from here, where it always was; it lives in partition.ts, which a task thread
// loads without this module's HTTP server.
export { partitionFileName };

/** Directory of a job's intermediate data inside a worker's data directory. */
export function jobDir(dataDir: string, job: string): string {
  return join(dataDir, `job-${job}`);
}

/** Directory of one map attempt's partition files inside a job directory. */
export function mapAttemptDir(dataDir: string, job: string, map: number, attempt: number): string {
  return join(jobDir(dataDir, job), `map-${map}-a${attempt}`);
}

const ROUTE = /^\/mr\/([0-9a-f]{8,64})\/map\/(\d{1,9})\/(\d{1,9})\/(\d{1,9})$/;

/**
 * Handles one data request: 403 without the job's token, 404 for anything but an existing
 * partition of the served job, else the file streamed with its Content-Length. `onServed` is
 * told the bytes of each partition handed out.
 */
export async function handleShuffleRequest(
  request: Request,
  dataDir: string,
  job: ServedJob | undefined,
  onServed: (bytes: number) => void = () => {},
): Promise<Response> {
  if (request.method !== "GET") return new Response("Method not allowed\n", { status: 405 });
  const token = bearerToken(request);
  if (job === undefined || token === undefined || !sameSecret(token, job.token)) {
    return new Response("Forbidden: a data request needs the job's token\n", { status: 403 });
  }
  const match = ROUTE.exec(new URL(request.url).pathname);
  if (!match || match[1] !== job.id) return new Response("Not found\n", { status: 404 });
  const [map, attempt, reduce] = [match[2], match[3], match[4]].map(Number);
  const path = join(mapAttemptDir(dataDir, job.id, map, attempt), partitionFileName(reduce));
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return new Response("Not found\n", { status: 404 });
  }
  const size = (await file.stat()).size;
  onServed(size);
  return new Response(file.readable, {
    headers: { "content-length": String(size), "content-type": "application/octet-stream" },
  });
}

/** Starts the data server on `hostname:port` (0 = any free port). */
export function startShuffleServer(
  listen: { hostname: string; port: number },
  dataDir: string,
  job: () => ServedJob | undefined,
  onServed?: (bytes: number) => void,
): HttpListener {
  // serveHttp caps connections, times out half-sent and idle requests, survives EMFILE, and
  // routes by the path only: a Host header must not move the path the map output is chosen by.
  return serveHttp({
    hostname: listen.hostname,
    port: listen.port,
    maxConnections: defaultConnectionCap(),
    handler: (request) => handleShuffleRequest(request, dataDir, job(), onServed),
  });
}
