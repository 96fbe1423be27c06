/**
 * The membership API's vocabulary, shared by the HTTP routes, the peer RPC method and the
 * `raftmr member` / `raftmr leader` commands: requests, their validation, the member list they
 * answer with, and the refusal error that becomes HTTP 409.
 */
import { InvalidRequestError } from "./service.ts";

/** The peer RPC method that carries membership requests (forwarded to the leader). */
export const MEMBERS_RPC_METHOD = "members";

/** Prefix of a RemoteError message that is a refusal (409) rather than a failure. */
export const CONFLICT_PREFIX = "conflict:";
/** Prefix of a RemoteError message that is a malformed request (400). */
export const INVALID_PREFIX = "invalid:";
/** Prefix of a RemoteError message saying nothing happened and a retry may succeed (503). */
export const UNAVAILABLE_PREFIX = "unavailable:";
/** Prefix of a RemoteError message saying the change's outcome is unknown (504). */
export const TIMEOUT_PREFIX = "timeout:";

/** A membership request, as the HTTP routes and the CLI build it. */
export type MembersRequest =
  | { op: "list" }
  | { op: "add"; id: number; peerAddr: string; learner: boolean }
  | { op: "promote"; id: number }
  | { op: "remove"; id: number }
  | { op: "transfer"; to?: number };

/** One member as GET /v1/members shows it. */
export interface MemberView {
  id: number;
  peerAddr: string;
  role: "voter" | "learner";
  leader: boolean;
  /** The leader's match index for this member (the leader's own last index for itself). */
  match: number;
}

/** The answer to list/add/promote/remove: every member and the index of the configuration. */
export interface MembersView {
  members: MemberView[];
  configIndex: number;
}

/** The answer to a leadership transfer: the leader in office afterwards. */
export interface TransferView {
  leader: number;
  term: number;
}

/** The cluster refuses a membership request for a reason the operator can act on (HTTP 409). */
export class ConflictError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "ConflictError";
  }
}

/** What serves membership requests on a node (forwarding to the leader as needed). */
export interface MembershipApi {
  /** Runs a request; rejects ConflictError, InvalidRequestError, UnavailableError, TimeoutError. */
  members(request: MembersRequest): Promise<MembersView | TransferView>;
}

const MAX_ID = 1_000_000;

/** Checks an id from a path, body or command line; throws InvalidRequestError. */
export function validateMemberId(v: unknown, what = "id"): number {
  const n = typeof v === "string" && /^[0-9]{1,7}$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > MAX_ID) {
    throw new InvalidRequestError(
      `Invalid ${what}: expected an integer from 1 to ${MAX_ID}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** Checks a peer address "host:port"; throws InvalidRequestError. */
export function validatePeerAddr(v: unknown): string {
  if (typeof v !== "string") throw new InvalidRequestError("Invalid peerAddr: expected a string");
  const colon = v.lastIndexOf(":");
  const port = Number(v.slice(colon + 1));
  if (
    colon <= 0 || !/^[0-9]{1,5}$/.test(v.slice(colon + 1)) || port < 1 || port > 65535 ||
    v.length > 300 || /\s/.test(v)
  ) {
    throw new InvalidRequestError(`Invalid peerAddr: expected HOST:PORT, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Validates an untrusted request (RPC params); throws InvalidRequestError naming the problem. */
export function validateMembersRequest(raw: unknown): MembersRequest {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError("Invalid membership request: not an object");
  }
  const o = raw as Record<string, unknown>;
  switch (o.op) {
    case "list":
      return { op: "list" };
    case "add": {
      if (o.learner !== undefined && typeof o.learner !== "boolean") {
        throw new InvalidRequestError("Invalid learner: expected true or false");
      }
      return {
        op: "add",
        id: validateMemberId(o.id),
        peerAddr: validatePeerAddr(o.peerAddr),
        learner: o.learner !== false,
      };
    }
    case "promote":
    case "remove":
      return { op: o.op, id: validateMemberId(o.id) };
    case "transfer":
      return o.to === undefined || o.to === null
        ? { op: "transfer" }
        : { op: "transfer", to: validateMemberId(o.to, "to") };
    default:
      throw new InvalidRequestError(
        `Invalid membership request: unknown op ${JSON.stringify(o.op)}`,
      );
  }
}
