/**
 * The peer handshake: the first frame exchange on every connection to a peer port, before any
 * RPC frame is read. The dialer sends a Hello; the listener answers Welcome or Refused (and then
 * closes). Nothing a connection sends is dispatched until its Hello is accepted, so an
 * unauthenticated sender can never have a Raft message stepped.
 *
 * Who may be what:
 * - role "peer" (may send Raft messages and forward KV calls): the TLS layer verified a client
 *   certificate signed by the cluster's CA (mutual TLS; see net/peer_tls.ts for why client
 *   certificates rather than a shared-secret challenge), and the claimed node id is in --peers.
 * - role "client" (may call the KV methods only): presents one of the tokens of
 *   --auth-token-file. Tokens travel inside TLS, so they are never seen on the wire.
 * On an insecure node (no credentials) both roles are admitted on their word.
 *
 * The messages are versioned and extensible: a listener ignores fields it does not know, and a
 * new field is optional unless the version number is raised. To add one (the cluster id and a
 * `joining` flag, say): declare it in Hello, copy it in parseHello after checking its type, set
 * it in peerHello's caller, and judge it in HandshakePolicy.checkPeer.
 */
import { equalBytes, sha256 } from "./sha256.ts";

/** The handshake version this build speaks. */
export const HANDSHAKE_VERSION = 1;

/** How long a new connection has to complete TLS and its Hello before it is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;

/** Bound on one frame before the handshake completes: a Hello is tiny. */
export const HANDSHAKE_MAX_FRAME_BYTES = 16 * 1024;

/** What a connection claims to be. */
export type Role = "peer" | "client";

/** The dialer's first frame. */
export interface Hello {
  type: "hello";
  version: number;
  role: Role;
  /** The dialing node's id (role "peer"). */
  id?: number;
  /** A client token (role "client"). */
  token?: string;
  /** The dialing node's cluster id, once it knows one (role "peer"). */
  clusterId?: string;
  /** The dialing node was started with --join: a member being added (role "peer"). */
  joining?: boolean;
  /** The dialing node holds no Raft state: no term, no log (role "peer"). */
  fresh?: boolean;
}

/** The listener's answer when the Hello is accepted. */
export interface Welcome {
  type: "welcome";
  version: number;
  /** The listening node's id (0 for a listener that is not a node). */
  id: number;
}

/** The listener's answer before it closes a refused connection. */
export interface Refused {
  type: "refused";
  reason: string;
}

/** A handshake failed; the message says why (sent to the dialer and logged by the listener). */
export class HandshakeError extends Error {
  /**
   * The listener answered Refused (no token, a wrong one, not a member): retrying will not help,
   * unlike a handshake that failed on the way (no answer in time, a closed connection).
   */
  readonly refused: boolean;

  constructor(message: string, refused = false) {
    super(message);
    this.name = "HandshakeError";
    this.refused = refused;
  }
}

/** What the transport below the handshake established about the connection. */
export interface TransportFacts {
  /** Whether TLS is in use at all. */
  tls: boolean;
  /** Whether the dialer presented a client certificate that chains to the cluster CA. */
  certificateVerified: boolean;
  /** Why a presented certificate was not verified, if one was presented. */
  certificateError?: string;
}

/** What an accepted connection is. */
export interface Identity {
  role: Role;
  /** Node id of a peer. */
  id?: number;
}

/** The listener's rules. */
export interface HandshakePolicy {
  /** This node's id (0 when the listener is not a node). */
  selfId: number;
  /**
   * Whether a node id is a member now (membership changes at run time); undefined accepts any
   * id (a port without peers).
   */
  isPeer?: (id: number) => boolean;
  /**
   * Further rules for a peer's Hello (the cluster identity, say): returns why it is refused, or
   * undefined to admit it.
   */
  checkPeer?: (hello: Hello) => string | undefined;
  /** Peers must present a verified client certificate (true whenever TLS is on). */
  requirePeerCertificate: boolean;
  /** SHA-256 digests of the accepted client tokens; undefined admits clients without one. */
  tokenDigests?: Uint8Array[];
}

/** Builds the Hello a node sends to its peers. */
export function peerHello(id: number): Hello {
  return { type: "hello", version: HANDSHAKE_VERSION, role: "peer", id };
}

/** Builds the Hello a native client sends. */
export function clientHello(token?: string): Hello {
  const hello: Hello = { type: "hello", version: HANDSHAKE_VERSION, role: "client" };
  if (token !== undefined) hello.token = token;
  return hello;
}

/** Builds the Welcome of a listener. */
export function welcome(selfId: number): Welcome {
  return { type: "welcome", version: HANDSHAKE_VERSION, id: selfId };
}

/** Validates a Hello from the network; throws HandshakeError naming what is wrong. */
export function parseHello(raw: unknown): Hello {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new HandshakeError("Expected a hello message first");
  }
  const r = raw as Record<string, unknown>;
  if (r.type !== "hello") throw new HandshakeError("Expected a hello message first");
  if (r.version !== HANDSHAKE_VERSION) {
    throw new HandshakeError(
      `Unsupported handshake version: ${String(r.version)} (this node speaks ${HANDSHAKE_VERSION})`,
    );
  }
  if (r.role !== "peer" && r.role !== "client") {
    throw new HandshakeError(`Unknown role: ${String(r.role)}`);
  }
  const hello: Hello = { type: "hello", version: HANDSHAKE_VERSION, role: r.role };
  if (r.id !== undefined) {
    if (typeof r.id !== "number" || !Number.isSafeInteger(r.id) || r.id < 1) {
      throw new HandshakeError("Invalid node id in hello");
    }
    hello.id = r.id;
  }
  if (r.token !== undefined) {
    if (typeof r.token !== "string" || r.token.length > 4096) {
      throw new HandshakeError("Invalid token in hello");
    }
    hello.token = r.token;
  }
  if (r.clusterId !== undefined) {
    if (typeof r.clusterId !== "string" || r.clusterId.length === 0 || r.clusterId.length > 64) {
      throw new HandshakeError("Invalid cluster id in hello");
    }
    hello.clusterId = r.clusterId;
  }
  for (const flag of ["joining", "fresh"] as const) {
    const v = r[flag];
    if (v === undefined) continue;
    if (typeof v !== "boolean") throw new HandshakeError(`Invalid ${flag} flag in hello`);
    hello[flag] = v;
  }
  return hello;
}

/** Validates the listener's answer; returns the Welcome or throws HandshakeError. */
export function parseAnswer(raw: unknown): Welcome {
  if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
    const r = raw as Record<string, unknown>;
    if (r.type === "refused") {
      throw new HandshakeError(`Refused by the server: ${String(r.reason)}`, true);
    }
    if (r.type === "welcome" && typeof r.id === "number") {
      if (r.version !== HANDSHAKE_VERSION) {
        throw new HandshakeError(`Unsupported handshake version: ${String(r.version)}`);
      }
      return { type: "welcome", version: HANDSHAKE_VERSION, id: r.id };
    }
  }
  throw new HandshakeError("Expected a welcome message first");
}

/** Decides whether a Hello is admitted; returns the identity or throws HandshakeError. */
export function admit(hello: Hello, facts: TransportFacts, policy: HandshakePolicy): Identity {
  if (hello.role === "peer") {
    if (policy.requirePeerCertificate && !facts.certificateVerified) {
      throw new HandshakeError(
        facts.certificateError
          ? `Peer certificate rejected: ${facts.certificateError}`
          : "Peer presented no client certificate signed by the cluster CA",
      );
    }
    if (hello.id === undefined) throw new HandshakeError("Peer hello carries no node id");
    if (hello.id === policy.selfId) {
      throw new HandshakeError(`Peer claims this node's own id ${hello.id}`);
    }
    if (policy.isPeer && !policy.isPeer(hello.id)) {
      throw new HandshakeError(`Node ${hello.id} is not a member of this cluster`);
    }
    const refusal = policy.checkPeer?.(hello);
    if (refusal !== undefined) throw new HandshakeError(refusal);
    return { role: "peer", id: hello.id };
  }
  if (policy.tokenDigests !== undefined) {
    if (hello.token === undefined) throw new HandshakeError("Client presented no token");
    if (!tokenMatches(hello.token, policy.tokenDigests)) {
      throw new HandshakeError("Client token is not valid");
    }
  }
  return { role: "client" };
}

/** SHA-256 of a token: what a listener keeps, and compares in constant time. */
export function tokenDigest(token: string): Uint8Array {
  // Our own SHA-256 (net/sha256.ts) rather than node:crypto, which would cost each process
  // that checks tokens (every coordinator, `mr run` included) about 30 ms of CPU to load.
  return sha256(token);
}

/**
 * Whether `token` is one of the tokens whose digests are given. Digests have one length, so
 * the comparison takes the same time whatever they hold; every digest is compared, so the time
 * does not tell which matched.
 */
export function tokenMatches(token: string, digests: Uint8Array[]): boolean {
  const digest = tokenDigest(token);
  let found = false;
  for (const candidate of digests) {
    if (equalBytes(digest, candidate)) found = true;
  }
  return found;
}

/** Parses a token file: one token per line; blank lines and `#` comments are ignored. */
export function parseTokenFile(text: string, path: string): string[] {
  const tokens = text.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith("#")
  );
  if (tokens.length === 0) throw new RangeError(`Token file ${path} holds no token`);
  for (const token of tokens) {
    if (token.length < 16) {
      throw new RangeError(`Token file ${path}: a token is shorter than 16 characters`);
    }
  }
  return tokens;
}
