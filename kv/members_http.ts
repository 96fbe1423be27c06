/**
 * The membership and leadership HTTP routes (issue 15's contract): GET/POST /v1/members,
 * POST /v1/members/{id}/promote, DELETE /v1/members/{id}, POST /v1/leader/transfer. They only
 * translate HTTP to MembershipApi calls and errors to status codes: refusals 409, malformed
 * requests 400, no leader 503, outcome unknown 504.
 */
import type { Context, Hono } from "hono";
import {
  ConflictError,
  type MembershipApi,
  type MembersRequest,
  validateMemberId,
  validateMembersRequest,
} from "./members_api.ts";
import { InvalidRequestError, TimeoutError, UnavailableError } from "./service.ts";

const MAX_BODY_BYTES = 64 * 1024;

function json(status: number, body: unknown, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Maps an error from the API to its HTTP answer; unknown errors go to onInternalError (500). */
function errorToResponse(error: unknown, onInternalError?: (e: unknown) => void): Response {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ConflictError) return json(409, { error: message });
  if (error instanceof InvalidRequestError) return json(400, { error: message });
  if (error instanceof UnavailableError) {
    return json(503, { error: message }, {
      "retry-after": String(Math.max(1, Math.ceil(error.retryAfterSeconds))),
    });
  }
  if (error instanceof TimeoutError) return json(504, { error: message });
  onInternalError?.(error);
  return json(500, { error: `Internal error: ${message}` });
}

/** Reads a JSON object body (an empty body is `{}`); throws InvalidRequestError when malformed. */
async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > MAX_BODY_BYTES) {
      throw new InvalidRequestError(`Request body too large: over ${MAX_BODY_BYTES} bytes`);
    }
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw error;
    throw new InvalidRequestError(`Invalid request body: ${(error as Error).message}`);
  }
  if (text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new InvalidRequestError(`Invalid JSON body: ${(error as Error).message}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequestError("Invalid JSON body: expected an object");
  }
  return body as Record<string, unknown>;
}

/**
 * Adds the membership routes to `app`. Each route answers on any node: the API forwards to the
 * leader. `onInternalError` sees unexpected failures (answered 500).
 */
export function addMembersRoutes(
  app: Hono,
  api: MembershipApi,
  onInternalError?: (error: unknown) => void,
): void {
  const run = async (build: (c: Context) => Promise<MembersRequest>, c: Context) => {
    try {
      return json(200, await api.members(await build(c)));
    } catch (error) {
      return errorToResponse(error, onInternalError);
    }
  };
  app.get("/v1/members", (c) => run(() => Promise.resolve({ op: "list" }), c));
  app.post("/v1/members", (c) =>
    run(async (c) => {
      const body = await readJsonObject(c.req.raw);
      if (body.learner !== undefined && typeof body.learner !== "boolean") {
        throw new InvalidRequestError("Invalid learner: expected true or false");
      }
      return validateMembersRequest({ ...body, op: "add", learner: body.learner ?? true });
    }, c));
  app.post(
    "/v1/members/:id/promote",
    (c) =>
      run((c) => Promise.resolve({ op: "promote", id: validateMemberId(c.req.param("id")) }), c),
  );
  app.delete(
    "/v1/members/:id",
    (c) =>
      run((c) => Promise.resolve({ op: "remove", id: validateMemberId(c.req.param("id")) }), c),
  );
  app.post("/v1/leader/transfer", (c) =>
    run(async (c) => {
      const body = await readJsonObject(c.req.raw);
      return validateMembersRequest({ op: "transfer", to: body.to });
    }, c));
}
