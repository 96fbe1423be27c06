/**
 * A node's security material, loaded once at start from the files named on the command line:
 * peer TLS (certificate, key, cluster CA), client tokens, HTTP TLS. Every error names the file.
 */
import { parseTokenFile, tokenDigest } from "./handshake.ts";
// Types only: node:tls loads with the first TLS file (loadNodeSecurity), not with readTokens.
import type { TlsMaterial } from "./peer_tls.ts";

/** The files a node's security comes from; all optional (no files: an insecure node). */
export interface SecurityFiles {
  peerCert?: string;
  peerKey?: string;
  peerCa?: string;
  authTokenFile?: string;
  httpCert?: string;
  httpKey?: string;
}

/** Loaded security material. */
export interface NodeSecurity {
  /** Mutual TLS on the peer port. */
  peerTls?: TlsMaterial;
  /** Digests of the client tokens (peer port and HTTP); undefined: no tokens configured. */
  tokenDigests?: Uint8Array[];
  /** HTTPS for the HTTP API. */
  httpTls?: { cert: string; key: string };
}

/** Loads what `files` names; throws RangeError for an incomplete set, Error for a bad file. */
export async function loadNodeSecurity(files: SecurityFiles): Promise<NodeSecurity> {
  const security: NodeSecurity = {};
  const { loadTlsMaterial, readPem } = await import("./peer_tls.ts");
  const peer = [files.peerCert, files.peerKey, files.peerCa];
  if (peer.some((p) => p !== undefined)) {
    if (peer.some((p) => p === undefined)) {
      throw new RangeError("Peer TLS needs all of --peer-cert, --peer-key and --peer-ca");
    }
    security.peerTls = await loadTlsMaterial({
      cert: files.peerCert!,
      key: files.peerKey!,
      ca: files.peerCa!,
    });
  }
  if (files.authTokenFile !== undefined) {
    const tokens = await readTokens(files.authTokenFile);
    security.tokenDigests = tokens.map(tokenDigest);
  }
  if ((files.httpCert === undefined) !== (files.httpKey === undefined)) {
    throw new RangeError("HTTPS needs both --http-cert and --http-key");
  }
  if (files.httpCert !== undefined) {
    security.httpTls = {
      cert: await readPem(files.httpCert, "certificate"),
      key: await readPem(files.httpKey!, "private key"),
    };
  }
  return security;
}

/** Reads a token file (one token per line); errors name the file. */
export async function readTokens(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read token file ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  return parseTokenFile(text, path);
}

/** Whether a listen address can only be reached from this machine. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
