/**
 * How a command-line client proves itself to a cluster's peer port (net/handshake.ts): the
 * flags every such command takes (--credentials, --ca, --token-file) and the RpcClient options
 * they become: a client Hello with the token, and TLS that trusts only the cluster's CA.
 * Without flags, `data/credentials` is used when it exists (where `raftmr cluster` puts them).
 */
import type { FlagSpec, ParsedArgs } from "./command.ts";
import { stringFlag, UsageError } from "./command.ts";
import type { ByteConn } from "../net/framed_conn.ts";
import { clientHello, type Hello } from "../net/handshake.ts";
import { readTokens } from "../net/security.ts";
import { errorMessage } from "../util/errors.ts";

/** Where `raftmr cluster` (default --data-dir) keeps a local cluster's credentials. */
export const DEFAULT_CREDENTIALS_DIR = "data/credentials";

/** The flags of every command that talks to a peer port. */
export const CLIENT_SECURITY_FLAGS: Record<string, FlagSpec> = {
  credentials: {
    type: "string",
    value: "DIR",
    description: "Use DIR/ca.pem and DIR/token (default: data/credentials when it exists)",
  },
  ca: {
    type: "string",
    value: "FILE",
    description: "The cluster CA (PEM): connect with TLS and verify the nodes",
  },
  "token-file": {
    type: "string",
    value: "FILE",
    description: "A client token file (its first token is sent)",
  },
};

/** What an RpcClient to a peer port needs: its Hello, and a TLS dialer when the cluster has a CA. */
export interface PeerPortAccess {
  token?: string;
  ca?: string;
  hello: Hello;
  dial?: (address: { hostname: string; port: number }) => Promise<ByteConn>;
}

/** Reads the flags' files; throws UsageError naming a file that cannot be read. */
export async function clientSecurity(args: ParsedArgs): Promise<PeerPortAccess> {
  const credentials = stringFlag(args, "credentials");
  const dir = credentials ?? DEFAULT_CREDENTIALS_DIR;
  // An explicit --credentials must hold the files; the default is used only when it does.
  const inDir = async (file: string) =>
    credentials !== undefined ||
      await Deno.stat(`${dir}/${file}`).then(() => true, () => false)
      ? `${dir}/${file}`
      : undefined;
  const tokenFile = stringFlag(args, "token-file") ?? await inDir("token");
  const caFile = stringFlag(args, "ca") ?? await inDir("ca.pem");
  try {
    // Here rather than at the top: node:tls costs ~10 ms to load, and a command that only takes
    // these flags (raftmr worker) need not pay it.
    const { dialTls, readPem } = await import("../net/peer_tls.ts");
    const token = tokenFile === undefined ? undefined : (await readTokens(tokenFile))[0];
    const ca = caFile === undefined ? undefined : await readPem(caFile, "CA certificate");
    return {
      token,
      ca,
      hello: clientHello(token),
      dial: ca === undefined ? undefined : (address) => dialTls(address, { ca }),
    };
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}
