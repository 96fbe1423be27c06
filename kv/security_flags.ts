/**
 * The security and resource-limit flags of `raftmr serve`, and the start-up rule for a node
 * without credentials: on a loopback address it runs (a local trial); on any other address it
 * refuses to start unless --insecure says that this is meant. A refusal rather than a warning
 * because a warning scrolls by in a journal nobody reads, while a node that anyone on the
 * network can make leader of a forged log is a data-loss bug waiting for an attacker.
 */
import {
  type FlagSpec,
  intFlag,
  type ParsedArgs,
  parseDuration,
  stringFlag,
  UsageError,
} from "../cli/command.ts";
import type { HostPort } from "../net/host_port.ts";
import { DEFAULT_PARTIAL_FRAME_BUDGET_BYTES } from "../net/byte_budget.ts";
import { defaultConnectionCap } from "../net/conn_gate.ts";
import { DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from "../net/http_listener.ts";
import { isLoopback, type SecurityFiles } from "../net/security.ts";

/**
 * Paths open without a token by default: the health check load balancers poll, the metrics
 * Prometheus scrapes, and the status page and its JSON (which name peers and counts, never keys
 * or values). The KV API always needs the token when one is configured.
 */
export const DEFAULT_OPEN_PATHS = ["/healthz", "/metrics", "/status", "/"];

/** Flag specs to merge into the serve command's flags. */
export const SECURITY_FLAGS: Record<string, FlagSpec> = {
  "peer-cert": {
    type: "string",
    value: "FILE",
    description: "This node's certificate (PEM), signed by the cluster CA, for the peer port",
  },
  "peer-key": { type: "string", value: "FILE", description: "The key of --peer-cert (PEM)" },
  "peer-ca": {
    type: "string",
    value: "FILE",
    description: "The cluster CA (PEM): peers must present a certificate it signed",
  },
  "auth-token-file": {
    type: "string",
    value: "FILE",
    description: "Client tokens, one per line: required by `raftmr kv` and the HTTP API",
  },
  "http-cert": { type: "string", value: "FILE", description: "Serve HTTPS with this certificate" },
  "http-key": { type: "string", value: "FILE", description: "The key of --http-cert (PEM)" },
  "open-paths": {
    type: "string",
    value: "PATH,...",
    default: DEFAULT_OPEN_PATHS.join(","),
    description: "HTTP paths served without a token: read-only pages, no keys (empty: none)",
  },
  insecure: {
    type: "boolean",
    description: "Allow a non-loopback address without peer TLS and tokens",
  },
  "max-connections": {
    type: "string",
    value: "N",
    description: "Cap on concurrent connections per listener (default: from the open-file limit)",
  },
  "http-header-timeout": {
    type: "string",
    value: "DURATION",
    default: `${DEFAULT_HEADER_TIMEOUT_MS / 1000}s`,
    description: "Close an HTTP connection whose request headers take longer",
  },
  "http-idle-timeout": {
    type: "string",
    value: "DURATION",
    default: `${DEFAULT_IDLE_TIMEOUT_MS / 1000}s`,
    description: "Close an HTTP connection idle for longer between requests",
  },
  "frame-budget": {
    type: "string",
    value: "BYTES",
    default: String(DEFAULT_PARTIAL_FRAME_BUDGET_BYTES),
    description: "Bound on memory for partially received peer frames, all connections together",
  },
};

/** The parsed security and limit settings. */
export interface SecuritySettings {
  files: SecurityFiles;
  openPaths: Set<string>;
  maxConnections: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  frameBudgetBytes: number;
}

/**
 * Parses the flags; throws UsageError for an incomplete set or for a node without credentials
 * on a non-loopback address without --insecure.
 */
export function parseSecurityFlags(
  args: ParsedArgs,
  addresses: { peer: HostPort; http: HostPort },
): SecuritySettings {
  const files: SecurityFiles = {
    peerCert: stringFlag(args, "peer-cert"),
    peerKey: stringFlag(args, "peer-key"),
    peerCa: stringFlag(args, "peer-ca"),
    authTokenFile: stringFlag(args, "auth-token-file"),
    httpCert: stringFlag(args, "http-cert"),
    httpKey: stringFlag(args, "http-key"),
  };
  const peer = [files.peerCert, files.peerKey, files.peerCa];
  if (peer.some((p) => p !== undefined) && peer.some((p) => p === undefined)) {
    throw new UsageError("peer TLS needs all of --peer-cert, --peer-key and --peer-ca");
  }
  if ((files.httpCert === undefined) !== (files.httpKey === undefined)) {
    throw new UsageError("HTTPS needs both --http-cert and --http-key");
  }
  if (args.flags.insecure !== true) {
    if (!isLoopback(addresses.peer.hostname) && files.peerCert === undefined) {
      throw new UsageError(
        `peer address ${addresses.peer.hostname} is reachable from the network: give ` +
          "--peer-cert, --peer-key and --peer-ca (see `raftmr certs`), or --insecure",
      );
    }
    if (!isLoopback(addresses.http.hostname) && files.authTokenFile === undefined) {
      throw new UsageError(
        `HTTP address ${addresses.http.hostname} is reachable from the network: give ` +
          "--auth-token-file (see `raftmr certs`), or --insecure",
      );
    }
  }
  const openPaths = new Set(
    (stringFlag(args, "open-paths") ?? "").split(",").map((p) => p.trim()).filter((p) => p),
  );
  for (const path of openPaths) {
    if (!path.startsWith("/")) throw new UsageError(`flag --open-paths: not a path: "${path}"`);
  }
  const headerTimeoutMs = parseDuration(
    stringFlag(args, "http-header-timeout")!,
    "flag --http-header-timeout",
  );
  const idleTimeoutMs = parseDuration(
    stringFlag(args, "http-idle-timeout")!,
    "flag --http-idle-timeout",
  );
  if (headerTimeoutMs < 1 || idleTimeoutMs < 1) {
    throw new UsageError("flags --http-header-timeout and --http-idle-timeout must be positive");
  }
  return {
    files,
    openPaths,
    maxConnections: args.flags["max-connections"] === undefined
      ? defaultConnectionCap()
      : intFlag(args, "max-connections", 1, 1_000_000),
    headerTimeoutMs,
    idleTimeoutMs,
    frameBudgetBytes: intFlag(args, "frame-budget", 1024 * 1024, Number.MAX_SAFE_INTEGER),
  };
}
