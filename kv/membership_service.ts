/**
 * Serves membership requests on a peer: the leader proposes single-server changes and
 * leadership transfers through its RaftNode; any other node forwards the request to the leader
 * over the peer connection (the "members" RPC method) and relays the answer. Refusals become
 * ConflictError (HTTP 409), a lost leader UnavailableError (503), an unknown outcome
 * TimeoutError (504).
 */
import { RemoteError, type RpcClient } from "../net/rpc.ts";
import {
  ChangeRefusedError,
  NodeStoppedError,
  NotLeaderError,
  ProposalDroppedError,
} from "../raft/errors.ts";
import { type ConfChange, isChangeInProgress } from "../raft/membership.ts";
import type { RaftNode } from "../raft/node.ts";
import {
  CONFLICT_PREFIX,
  ConflictError,
  INVALID_PREFIX,
  type MembershipApi,
  type MembersRequest,
  type MembersView,
  type MemberView,
  TIMEOUT_PREFIX,
  type TransferView,
  UNAVAILABLE_PREFIX,
  validateMembersRequest,
} from "./members_api.ts";
import { InvalidRequestError, TimeoutError, UnavailableError } from "./service.ts";

/** What the membership service needs from the daemon around it. */
export interface MembershipServiceOptions {
  id: number;
  node: RaftNode;
  /** The RPC client for a peer (to forward to the leader), if it is known. */
  client: (id: number) => RpcClient | undefined;
  /** The address a member is reached at ("host:port"), for the member list. */
  addressOf: (id: number) => string;
  requestTimeoutMs: number;
  /** Whether the daemon is shutting down. */
  stopping: () => boolean;
  log: (line: string) => void;
}

const POLL_MS = 10;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Membership requests on one peer; see the file comment. */
export class MembershipService implements MembershipApi {
  readonly #o: MembershipServiceOptions;

  constructor(options: MembershipServiceOptions) {
    this.#o = options;
  }

  /** Runs a request here if this node leads, else on the leader. */
  async members(request: MembersRequest): Promise<MembersView | TransferView> {
    const deadline = performance.now() + this.#o.requestTimeoutMs;
    while (true) {
      if (this.#o.stopping()) throw new UnavailableError("Node is shutting down");
      const leader = this.#o.node.leader;
      if (leader === this.#o.id) {
        try {
          return await this.#onLeader(request, deadline);
        } catch (error) {
          if (!(error instanceof NotLeaderError)) throw error;
        }
      } else if (leader !== 0) {
        const answer = await this.#forward(leader, request, deadline);
        if (answer !== undefined) return answer;
      }
      if (performance.now() >= deadline) {
        throw new UnavailableError(
          "No leader is known: an election is in progress or this node is cut off",
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Handles the "members" RPC: a request from the CLI or forwarded by another node. */
  async serveRpc(raw: unknown): Promise<MembersView | TransferView> {
    const forwarded = typeof raw === "object" && raw !== null &&
      (raw as { forwarded?: unknown }).forwarded === true;
    let request: MembersRequest;
    try {
      request = validateMembersRequest(raw);
    } catch (error) {
      throw new Error(`${INVALID_PREFIX} ${message(error)}`);
    }
    if (forwarded && this.#o.node.leader !== this.#o.id) {
      // Never forward twice: the original node retries against the new leader.
      throw new Error(`${UNAVAILABLE_PREFIX} node ${this.#o.id} is not the leader`);
    }
    try {
      return await this.members(request);
    } catch (error) {
      if (error instanceof ConflictError) throw new Error(`${CONFLICT_PREFIX} ${error.message}`);
      if (error instanceof InvalidRequestError) {
        throw new Error(`${INVALID_PREFIX} ${error.message}`);
      }
      if (error instanceof UnavailableError) {
        throw new Error(`${UNAVAILABLE_PREFIX} ${error.message}`);
      }
      if (error instanceof TimeoutError) throw new Error(`${TIMEOUT_PREFIX} ${error.message}`);
      throw error;
    }
  }

  /** The member list as this node sees it (match indexes are the leader's). */
  view(): MembersView {
    const node = this.#o.node;
    const ms = node.membership();
    const status = node.status();
    const conf = ms?.conf ?? { peers: [] };
    const members: MemberView[] = [];
    const add = (id: number, role: "voter" | "learner") => {
      const match = id === this.#o.id ? status.lastIndex : status.progress?.[id]?.match ?? 0;
      members.push({
        id,
        peerAddr: this.#o.addressOf(id),
        role,
        leader: id === status.leader,
        match,
      });
    };
    for (const id of conf.peers) add(id, "voter");
    for (const id of conf.learners ?? []) add(id, "learner");
    members.sort((a, b) => a.id - b.id);
    return { members, configIndex: ms?.confIndex ?? 0 };
  }

  async #onLeader(request: MembersRequest, deadline: number): Promise<MembersView | TransferView> {
    const node = this.#o.node;
    if (request.op === "list") return this.view();
    if (request.op === "transfer") {
      try {
        const leader = await node.transferLeadership(request.to ?? 0);
        // "in office": wait until the new leader is known here with its term.
        return { leader, term: node.status().term };
      } catch (error) {
        if (error instanceof ChangeRefusedError) throw new ConflictError(error.message);
        if (error instanceof ProposalDroppedError) {
          throw new ConflictError(
            `Leadership transfer failed: ${error.message.replace(/^Proposal dropped: /, "")}`,
          );
        }
        throw this.#translate(error);
      }
    }
    if (request.op === "add") {
      // The configuration records addresses from the cluster id entry on; before it commits,
      // the bootstrap members' addresses are only in --peers, so look at both.
      const conf = node.membership()?.conf;
      for (const id of [...(conf?.peers ?? []), ...(conf?.learners ?? [])]) {
        if (id !== request.id && this.#o.addressOf(id) === request.peerAddr) {
          throw new ConflictError(`Address ${request.peerAddr} is already used by node ${id}`);
        }
      }
    }
    const change = toChange(request);
    // Refusals that mean "in a moment" (the leader's first commit, a leadership transfer) are
    // retried until the deadline. A change already in progress is refused at once, naming it:
    // it may be stuck (a new voter that never starts), and waiting out --request-timeout for
    // it only to refuse then told the operator nothing. Changes made back to back by one
    // script do not meet it: each answer comes once its change is applied on the leader.
    while (true) {
      try {
        await node.changeMembership(change);
        return this.view();
      } catch (error) {
        if (
          error instanceof ChangeRefusedError && /retry/.test(error.message) &&
          !isChangeInProgress(error.message) && performance.now() + POLL_MS < deadline
        ) {
          await sleep(POLL_MS);
          if (node.leader !== this.#o.id) throw new NotLeaderError(node.leader);
          continue;
        }
        if (error instanceof ChangeRefusedError) throw new ConflictError(error.message);
        throw this.#translate(error);
      }
    }
  }

  #translate(error: unknown): Error {
    if (error instanceof NotLeaderError) return error;
    if (error instanceof NodeStoppedError) return new UnavailableError("Node is shutting down");
    if (error instanceof ProposalDroppedError) {
      return new TimeoutError(`Outcome unknown: ${error.message}`);
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  /** Forwards to the leader; undefined means "ask again" (it was not the leader any more). */
  async #forward(
    leader: number,
    request: MembersRequest,
    deadline: number,
  ): Promise<MembersView | TransferView | undefined> {
    const client = this.#o.client(leader);
    if (!client) throw new UnavailableError(`Leader ${leader} has no known address`);
    try {
      return await client.call<MembersView | TransferView>(
        "members",
        { ...request, forwarded: true },
        { timeoutMs: Math.max(1, deadline - performance.now()) },
      );
    } catch (error) {
      const text = message(error);
      if (error instanceof RemoteError) {
        const body = (prefix: string) => text.slice(prefix.length).trim();
        if (text.startsWith(CONFLICT_PREFIX)) throw new ConflictError(body(CONFLICT_PREFIX));
        if (text.startsWith(INVALID_PREFIX)) throw new InvalidRequestError(body(INVALID_PREFIX));
        if (text.startsWith(TIMEOUT_PREFIX)) throw new TimeoutError(body(TIMEOUT_PREFIX));
        if (text.startsWith(UNAVAILABLE_PREFIX)) {
          await sleep(POLL_MS * 4);
          return undefined;
        }
        throw new TimeoutError(`Outcome unknown: ${text}`);
      }
      // Not sent or no answer: a list is safe to retry; a change's fate is unknown.
      if (request.op === "list") {
        await sleep(POLL_MS * 4);
        return undefined;
      }
      if (!client.connected && performance.now() < deadline) {
        await sleep(POLL_MS * 4);
        return undefined;
      }
      throw new TimeoutError(`Outcome unknown: ${text}`);
    }
  }
}

function toChange(request: Exclude<MembersRequest, { op: "list" | "transfer" }>): ConfChange {
  switch (request.op) {
    case "add":
      return request.learner
        ? { type: "addLearner", id: request.id, addr: request.peerAddr }
        : { type: "addVoter", id: request.id, addr: request.peerAddr };
    case "promote":
      return { type: "promote", id: request.id };
    case "remove":
      return { type: "remove", id: request.id };
  }
}
