/**
 * The job routes of every peer's HTTP API, added to the peer's Hono app (after its middleware,
 * so whatever guards the KV routes guards these too): POST /v1/mr/jobs -> 201 {"id"},
 * GET /v1/mr/jobs, GET /v1/mr/jobs/{id}, DELETE /v1/mr/jobs/{id} (cancel). Errors are JSON
 * `{"error"}` with the status the failure names.
 */
import type { Hono } from "hono";
import { MAX_JOB_COMMAND_BYTES } from "./job_commands.ts";
import type { JobPeer } from "./job_peer.ts";
import { JobSubmitError } from "./job_submit.ts";
import { errorMessage } from "../util/errors.ts";

/** Request bodies above this are refused with 413: the command limit plus JSON overhead. */
const MAX_BODY_BYTES = MAX_JOB_COMMAND_BYTES + 64 * 1024;
const ID = /^[0-9a-f]{8,64}$/;

async function readJson(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) {
    throw new JobSubmitError(`Job too large: ${declared} bytes, limit ${MAX_BODY_BYTES}`, 413);
  }
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    throw new JobSubmitError(`Job too large: ${text.length} bytes, limit ${MAX_BODY_BYTES}`, 413);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new JobSubmitError(`Invalid job: not JSON: ${errorMessage(error)}`);
  }
}

/** Adds the /v1/mr/jobs routes to a peer's app. */
export function mountJobRoutes(app: Hono, jobs: JobPeer): void {
  const answer = async (params: Record<string, unknown>) => {
    const { status, body } = await jobs.clientCall(params);
    const headers: Record<string, string> = status === 201
      ? { location: `/v1/mr/jobs/${(body as { id: string }).id}` }
      : {};
    return Response.json(body, { status, headers });
  };
  app.post("/v1/mr/jobs", async (c) => {
    let job: unknown;
    try {
      job = await readJson(c.req.raw);
    } catch (error) {
      const status = error instanceof JobSubmitError ? error.status : 400;
      return Response.json({ error: errorMessage(error) }, { status });
    }
    return await answer({ op: "submit", job });
  });
  app.get("/v1/mr/jobs", () => answer({ op: "list" }));
  app.get("/v1/mr/jobs/:id", (c) => answer({ op: "get", id: checkedId(c.req.param("id")) }));
  app.delete("/v1/mr/jobs/:id", (c) => answer({ op: "cancel", id: checkedId(c.req.param("id")) }));
}

/** A path id that cannot be a job's becomes "" (answered 404 like any unknown id). */
function checkedId(id: string): string {
  return ID.test(id) ? id : "";
}
