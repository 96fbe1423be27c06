/**
 * TLS for peer ports: the listener side (node:tls) and the dialing side, both with the cluster's
 * own CA as the only trust anchor.
 *
 * Why node:tls and not Deno.listenTls: Deno.listenTls (Deno 2.9.6) has no option to request or
 * verify client certificates. node:tls createServer({ requestCert, ca }) under Deno 2.9.6 does:
 * tried on 2026-12-01, a client without a certificate reaches the server with
 * `authorized === false` (UNABLE_TO_GET_ISSUER_CERT), one with a self-signed certificate from
 * another CA with DEPTH_ZERO_SELF_SIGNED_CERT, and one signed by the cluster CA with
 * `authorized === true`. So peers prove membership with client certificates (mutual TLS, as
 * etcd does), and no shared-secret challenge is needed. `rejectUnauthorized` stays false so that
 * native clients, which have a token but no certificate, can use the same port: the handshake
 * (net/handshake.ts) admits the role "peer" only with a verified certificate.
 *
 * Both ends use node:tls sockets because Deno's own TLS connections cannot disable Nagle's
 * algorithm (no setNoDelay on Deno.TlsConn; strace shows no TCP_NODELAY), which would hold
 * small Raft frames back behind unacknowledged ones.
 */
import tls from "node:tls";
import { isIP } from "node:net";
import { NodeSocketConn } from "./node_socket_conn.ts";
import { HANDSHAKE_TIMEOUT_MS } from "./handshake.ts";

/** PEM material for one node: its certificate and key, and the cluster CA. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
}

/** PEM material for a client that has no certificate: only the CA it trusts. */
export interface TlsTrust {
  ca: string;
  /** A client certificate and key, for peers dialing each other. */
  cert?: string;
  key?: string;
}

/** Reads a node's certificate, key and CA files; errors name the file. */
export async function loadTlsMaterial(
  paths: { cert: string; key: string; ca: string },
): Promise<TlsMaterial> {
  return {
    cert: await readPem(paths.cert, "certificate"),
    key: await readPem(paths.key, "private key"),
    ca: await readPem(paths.ca, "CA certificate"),
  };
}

/** Reads one PEM file and checks that it looks like PEM. */
export async function readPem(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read ${what} ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  if (!text.includes("-----BEGIN ")) throw new Error(`Cannot read ${what} ${path}: not PEM`);
  return text;
}

/** What the TLS listener hands over for each connection that completed the TLS handshake. */
export interface TlsAccepted {
  conn: NodeSocketConn;
  certificateVerified: boolean;
  certificateError?: string;
}

/** A running TLS listener. */
export interface TlsListenerHandle {
  addr: { hostname: string; port: number };
  close(): Promise<void>;
}

/** Options of listenTls. */
export interface ListenTlsOptions {
  hostname: string;
  port: number;
  material: TlsMaterial;
  /** Called for every TLS connection, verified client certificate or not. */
  onConnection: (accepted: TlsAccepted) => void;
  /** Called before the TLS handshake; return false to close the socket at once (cap reached). */
  admit?: (socket: { destroy(): void; once(event: "close", f: () => void): unknown }) => boolean;
  /** Called when a TLS handshake fails (bad certificate, not TLS, timeout). */
  onTlsError?: (remote: string, error: Error) => void;
  /** Called when the listener reports an error after it started (e.g. EMFILE on accept). */
  onListenerError?: (error: Error) => void;
}

/** Starts a TLS listener that requests (and verifies, against the CA) client certificates. */
export function listenTls(options: ListenTlsOptions): Promise<TlsListenerHandle> {
  const { material } = options;
  const server = tls.createServer({
    cert: material.cert,
    key: material.key,
    ca: [material.ca],
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    minVersion: "TLSv1.2",
  }, (socket: tls.TLSSocket) => {
    const error = socket.authorizationError;
    // Without a certificate node:tls still reports UNABLE_TO_GET_ISSUER_CERT: say "none".
    const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
    options.onConnection({
      conn: new NodeSocketConn(socket),
      certificateVerified: socket.authorized === true,
      certificateError: error && presented ? String(error) : undefined,
    });
  });
  server.on("connection", (socket) => {
    if (options.admit && !options.admit(socket)) socket.destroy();
  });
  server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
    // node:tls leaves the socket open after this event when a listener is attached.
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.destroy();
    options.onTlsError?.(remote, error);
  });
  return new Promise((resolve, reject) => {
    const onStartError = (error: Error) => reject(error);
    server.once("error", onStartError);
    server.listen(options.port, options.hostname, () => {
      server.off("error", onStartError);
      server.on("error", (error: Error) => options.onListenerError?.(error));
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : options.port;
      resolve({
        addr: { hostname: options.hostname, port },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // close() waits for open connections; the owner closes those itself.
          }),
      });
    });
  });
}

/**
 * Dials `address` over TLS, verifying the server's certificate against the CA and its name (or
 * IP address) against `address.hostname`; presents a client certificate when one is given.
 */
export function dialTls(
  address: { hostname: string; port: number },
  trust: TlsTrust,
  timeoutMs = HANDSHAKE_TIMEOUT_MS,
): Promise<NodeSocketConn> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: address.hostname,
      port: address.port,
      ca: [trust.ca],
      cert: trust.cert,
      key: trust.key,
      // SNI takes host names only; an IP address is checked against the IP SANs instead.
      servername: isIP(address.hostname) ? undefined : address.hostname,
      minVersion: "TLSv1.2",
    });
    // Attached at once so no byte that follows the handshake is missed.
    const conn = new NodeSocketConn(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with ${address.hostname}:${address.port} timed out`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(conn);
    });
    socket.once("error", (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
  });
}
