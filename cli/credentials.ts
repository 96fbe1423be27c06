/**
 * Creates a cluster's credentials in one directory with the openssl command: a CA (ca.pem,
 * ca.key), one certificate per node signed by it (node-N.pem, node-N.key; usable both as server
 * and as client certificate, with the given host names and IP addresses as subjectAltNames),
 * and a random client token (token). Keys are written with mode 0600.
 *
 * Why openssl: node:crypto can create keys but not certificates (it has no X.509 builder), and
 * an ASN.1/X.509 encoder of our own is exactly the security-sensitive code a project should
 * not grow. openssl is on every Linux distribution (`apt-get install -y openssl`).
 */
import { isIP } from "node:net";
import { randomHex } from "../util/random_hex.ts";

/** What generateCredentials wrote, by path. */
export interface CredentialPaths {
  dir: string;
  ca: string;
  caKey: string;
  /** Certificate and key of node i at index i - 1. */
  nodes: { cert: string; key: string }[];
  token: string;
}

/** Options of generateCredentials. */
export interface CredentialOptions {
  nodes: number;
  /** subjectAltNames of every node certificate (default 127.0.0.1, ::1, localhost). */
  hosts?: string[];
  /** Validity of the node certificates in days (default 825; the CA gets ten years). */
  days?: number;
}

/** The files generateCredentials writes into `dir`. */
export function credentialPaths(dir: string, nodes: number): CredentialPaths {
  return {
    dir,
    ca: `${dir}/ca.pem`,
    caKey: `${dir}/ca.key`,
    nodes: Array.from({ length: nodes }, (_, i) => ({
      cert: `${dir}/node-${i + 1}.pem`,
      key: `${dir}/node-${i + 1}.key`,
    })),
    token: `${dir}/token`,
  };
}

/** Writes a new CA, node certificates and a token into `dir` (created if missing). */
export async function generateCredentials(
  dir: string,
  options: CredentialOptions,
): Promise<CredentialPaths> {
  const paths = credentialPaths(dir, options.nodes);
  const hosts = options.hosts ?? ["127.0.0.1", "::1", "localhost"];
  const days = String(options.days ?? 825);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await newKey(paths.caKey);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    paths.caKey,
    "-sha256",
    "-days",
    "3650",
    "-subj",
    "/CN=raftmr cluster CA",
    "-out",
    paths.ca,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]); // deno-fmt-ignore
  const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  const extensions = `${dir}/node.ext`;
  await Deno.writeTextFile(
    extensions,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=${san}`,
    ].join("\n") + "\n",
  );
  for (const [i, node] of paths.nodes.entries()) {
    const csr = `${dir}/node-${i + 1}.csr`;
    await newKey(node.key);
    await openssl(["req", "-new", "-key", node.key, "-subj", `/CN=node-${i + 1}`, "-out", csr]);
    await openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      paths.ca,
      "-CAkey",
      paths.caKey,
      "-sha256",
      "-days",
      days,
      "-set_serial",
      randomSerial(),
      "-extfile",
      extensions,
      "-out",
      node.cert,
    ]); // deno-fmt-ignore
    await Deno.remove(csr);
  }
  await Deno.remove(extensions);
  await writeToken(paths.token);
  return paths;
}

/** Writes a new random client token (256 bits, hex) to `path`, mode 0600. */
export async function writeToken(path: string): Promise<string> {
  const token = randomHex(32);
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  return token;
}

async function newKey(path: string): Promise<void> {
  await openssl([
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    path,
  ]);
  await Deno.chmod(path, 0o600);
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // A positive serial number.
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function openssl(args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "Cannot create credentials: openssl is not installed (apt-get install -y openssl)",
      );
    }
    throw error;
  }
  if (!output.success) {
    const detail = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    throw new Error(`Cannot create credentials: openssl ${args[0]} failed: ${detail}`);
  }
}
