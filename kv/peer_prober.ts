/**
 * Asks every other member, once a second, for a small status record over the peer connection
 * (RPC method "status"). That tells this node which members are up (any node, not only the
 * leader, which alone tracks followers' progress), the round-trip time to each (etcd exports the
 * same from its prober), and each member's HTTP address, so a dashboard can link to every
 * peer's page without a flag listing them: each node reports its own address, as it knows it.
 */
import type { HostPort } from "../net/host_port.ts";
import type { RpcClient } from "../net/rpc.ts";
import { errorMessage } from "../util/errors.ts";
import type { MemberReport } from "./node_status.ts";

/** The RPC method a peer answers with its PeerStatusReply. */
export const STATUS_RPC_METHOD = "status";

/** What a peer answers to STATUS_RPC_METHOD. */
export interface PeerStatusReply {
  id: number;
  /** Where its HTTP API and dashboard are, as others should dial it. */
  http: string;
  role: string;
  term: number;
  leader: number;
  commit: number;
  applied: number;
}

/** Options of PeerProber. */
export interface PeerProberOptions {
  selfId: number;
  /** The members and their peer addresses, read at every round (membership may change). */
  peers: () => ReadonlyMap<number, HostPort>;
  /** The RPC client for a member (the transport's). */
  client: (id: number) => RpcClient | undefined;
  /** Milliseconds between rounds (default 1000). */
  intervalMs?: number;
  /** Milliseconds a probe may take before the member counts as down (default 1000). */
  timeoutMs?: number;
  /** Called with each successful probe's round trip, in seconds. */
  onRoundTrip?: (peer: number, seconds: number) => void;
}

interface Seen {
  reply?: PeerStatusReply;
  up: boolean;
  rttMs?: number;
  lastSeen?: number;
  error?: string;
  inFlight: boolean;
}

/** Probes the other members in the background; members() reports what it last learned. */
export class PeerProber {
  readonly #options: PeerProberOptions;
  readonly #seen = new Map<number, Seen>();
  #timer?: ReturnType<typeof setInterval>;

  constructor(options: PeerProberOptions) {
    this.#options = options;
  }

  /** Starts probing (a first round at once). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#round();
    this.#timer = setInterval(() => this.#round(), this.#options.intervalMs ?? 1000);
  }

  /** Stops probing; probes in flight finish on their own timeouts. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Whether member `id` answered its last probe (undefined before the first answer or error). */
  reachable(id: number): boolean | undefined {
    const seen = this.#seen.get(id);
    return seen?.reply === undefined && seen?.error === undefined ? undefined : seen?.up;
  }

  /** Each other member's id with reachable(id). */
  reachability(): [number, boolean | undefined][] {
    return [...this.#options.peers().keys()]
      .filter((id) => id !== this.#options.selfId)
      .map((id) => [id, this.reachable(id)]);
  }

  /** Every member, `self` first, with what its last probe said. */
  members(self: MemberReport): MemberReport[] {
    const now = performance.now();
    const out: MemberReport[] = [self];
    for (const [id, address] of this.#options.peers()) {
      if (id === self.id) continue;
      const seen = this.#seen.get(id);
      const member: MemberReport = {
        id,
        peer: `${address.hostname}:${address.port}`,
        state: seen === undefined || (seen.reply === undefined && seen.error === undefined)
          ? "unknown"
          : seen.up
          ? "up"
          : "down",
      };
      if (seen?.reply) {
        member.http = seen.reply.http;
        if (seen.up) {
          member.role = seen.reply.role;
          member.term = seen.reply.term;
          member.commit = seen.reply.commit;
          member.applied = seen.reply.applied;
          member.rttMs = seen.rttMs;
        }
      }
      if (seen?.lastSeen !== undefined) member.lastSeenAgoMs = Math.round(now - seen.lastSeen);
      if (seen && !seen.up && seen.error) member.error = seen.error;
      out.push(member);
    }
    return out;
  }

  #round(): void {
    for (const id of this.#options.peers().keys()) {
      if (id === this.#options.selfId) continue;
      let seen = this.#seen.get(id);
      if (!seen) this.#seen.set(id, seen = { up: false, inFlight: false });
      if (seen.inFlight) continue;
      seen.inFlight = true;
      this.#probe(id, seen).finally(() => (seen.inFlight = false));
    }
  }

  async #probe(id: number, seen: Seen): Promise<void> {
    const client = this.#options.client(id);
    if (!client) return;
    const start = performance.now();
    try {
      const reply = validateReply(
        await client.call(STATUS_RPC_METHOD, {}, { timeoutMs: this.#options.timeoutMs ?? 1000 }),
      );
      const end = performance.now();
      seen.reply = reply;
      seen.up = true;
      seen.rttMs = end - start;
      seen.lastSeen = end;
      seen.error = undefined;
      this.#options.onRoundTrip?.(id, (end - start) / 1000);
    } catch (error) {
      seen.up = false;
      seen.error = errorMessage(error);
    }
  }
}

/** The reply of a peer, checked: it comes from the network. */
function validateReply(raw: unknown): PeerStatusReply {
  const r = raw as Record<string, unknown>;
  const numbers = ["id", "term", "leader", "commit", "applied"];
  if (
    typeof r !== "object" || r === null || typeof r.http !== "string" ||
    typeof r.role !== "string" || numbers.some((k) => typeof r[k] !== "number")
  ) {
    throw new TypeError("Invalid status reply: missing or mistyped fields");
  }
  return r as unknown as PeerStatusReply;
}

/**
 * The HTTP address to give others: a wildcard bind (0.0.0.0, ::) is not an address anyone can
 * dial, so then the host of this node's peer address stands in for it.
 */
export function advertisedHttp(http: HostPort, peer: HostPort): string {
  const wildcard = http.hostname === "0.0.0.0" || http.hostname === "::" || http.hostname === "";
  const host = wildcard ? peer.hostname : http.hostname;
  return `${host.includes(":") ? `[${host}]` : host}:${http.port}`;
}
