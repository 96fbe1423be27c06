/**
 * The Deno permissions of each role, in one place: the flags `cluster` and `mr run` give the
 * processes they start, the flags the tests start roles with, and the capabilities a role drops
 * when it was started with more (the `raftmr` command, `deno task start`, a compiled binary).
 *
 * Rule (least privilege, as Deno's permission model intends): a process gets the network and the
 * paths its role touches and nothing else. Only `cluster` and `mr run` may start processes; a
 * peer reads and writes only its data directory; a worker reads its app and its data directory.
 * deploy/*.service repeat these sets with their own paths; README.md lists them.
 */
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

/** Environment variables a role may read: sd_notify's socket and journald's stream marker. */
export const ENV_VARS = "NOTIFY_SOCKET,JOURNAL_STREAM";

/**
 * `--unstable-net` unlocks Deno.listenDatagram on a unix socket, the only way Deno 2.9 sends a
 * datagram to `$NOTIFY_SOCKET` (node:dgram has no unix sockets); it adds API, not permissions.
 */
export const NOTIFY_FLAG = "--unstable-net";

/**
 * Deno flags for `raftmr serve` on `dataDir`, plus the sd_notify socket when there is one and
 * `readFiles` the peer reads besides its data (e.g. a TLS certificate and key).
 */
export function servePermissions(
  dataDir: string,
  notifySocket?: string,
  readFiles: string[] = [],
): string[] {
  const write = notifySocket ? `${dataDir},${notifySocket}` : dataDir;
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${unique([dataDir, ...readFiles]).join(",")}`,
    `--allow-write=${write}`,
    `--allow-env=${ENV_VARS}`,
    NOTIFY_FLAG,
  ];
}

/**
 * Deno flags for `raftmr worker`: the network (it fetches splits from the coordinator and map
 * output from other workers, and serves its own), read access to its app's directory, read and
 * write access to its data directory, `readFiles` (its token file; with `mr run` also the inputs,
 * read in place for its splits, and the job directory, for the other workers' map output),
 * read and write access to `stageDirs` (with `mr run`, the coordinator's staging directory for
 * reduce outputs, committed by rename), and the host name (its worker id and advertised address).
 */
export function workerPermissions(
  appPath: string,
  dataDir: string,
  readFiles: string[] = [],
  stageDirs: string[] = [],
): string[] {
  const { read, write } = workerPaths(appPath, dataDir, readFiles, stageDirs);
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${read.join(",")}`,
    `--allow-write=${write.join(",")}`,
    "--allow-sys=hostname",
    `--allow-env=${ENV_VARS}`,
  ];
}

/**
 * The Deno permissions of a task thread that `mr run` runs in its own process (Deno's worker
 * option `deno.permissions`): the paths a worker process of the same job reads and writes
 * (workerPermissions), and nothing else. The network, which a worker process has for its RPC and
 * data server, stays with the main thread: app code needs none of it to map or reduce. Importing
 * modules from the network is what the process may (Deno's default hosts), as in a worker process.
 */
export function taskThreadPermissions(
  appPath: string,
  dataDir: string,
  readFiles: string[] = [],
  stageDirs: string[] = [],
): Deno.PermissionOptionsObject {
  const { read, write } = workerPaths(appPath, dataDir, readFiles, stageDirs);
  return {
    read,
    write,
    net: false,
    run: false,
    env: false,
    sys: false,
    ffi: false,
    import: "inherit",
  };
}

/** The paths a worker reads and writes: see workerPermissions. */
function workerPaths(
  appPath: string,
  dataDir: string,
  readFiles: string[],
  stageDirs: string[],
): { read: string[]; write: string[] } {
  const stage = stageDirs.map((d) => resolve(d));
  const read = [
    appDir(appPath),
    dataDir,
    ...programDir(),
    ...readFiles.map((f) => resolve(f)),
    ...stage,
  ];
  return { read: unique(read), write: unique([dataDir, ...stage]) };
}

/** Deno flags for `raftmr coordinator`: the network, its inputs, and its output directory. */
export function coordinatorPermissions(outputDir: string, inputs: string[]): string[] {
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${unique([outputDir, ...inputs.map((f) => resolve(f))]).join(",")}`,
    `--allow-write=${outputDir}`,
    `--allow-env=${ENV_VARS}`,
  ];
}

/** Deno flags for `raftmr kv`: the network, and the CA and token files it is given. */
export function kvPermissions(readPaths: string[] = []): string[] {
  const read = readPaths.length > 0 ? [`--allow-read=${unique(readPaths).join(",")}`] : [];
  return ["--no-prompt", "--allow-net", ...read];
}

/**
 * Deno flags for `raftmr cluster` on `dataDir`: what its nodes need plus starting the Deno
 * executable `program` (its nodes get servePermissions, not these).
 */
export function clusterPermissions(dataDir: string, program: string): string[] {
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${dataDir}`,
    `--allow-write=${dataDir}`,
    // openssl makes the cluster's credentials (cli/credentials.ts).
    `--allow-run=${program},openssl`,
    `--allow-env=${ENV_VARS}`,
    NOTIFY_FLAG,
  ];
}

/**
 * The union every role together needs: the `raftmr` command, `deno task start` and a compiled
 * binary run any subcommand, so they get this and each subcommand drops the rest at start
 * (dropPermissions). Paths cannot be known before the flags are read, hence read/write without a
 * list; what is left out for every role: FFI, importing from the network, other environment
 * variables, system information other than the host name.
 */
export const ALL_ROLES_PERMISSIONS: readonly string[] = [
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-sys=hostname",
  `--allow-env=${ENV_VARS}`,
  NOTIFY_FLAG,
];

/** Which whole capabilities each subcommand keeps; the others are revoked at its start. */
const KEEPS: Record<string, readonly Deno.PermissionName[]> = {
  serve: ["net", "read", "write", "env"],
  cluster: ["net", "read", "write", "env", "run"],
  kv: ["net", "read"],
  certs: ["read", "write", "run"],
  coordinator: ["net", "read", "write", "env"],
  worker: ["net", "read", "write", "env", "sys"],
  "mr run": ["net", "read", "write", "env", "sys", "run"],
  // Clients of a running cluster: requests over the network, and reading the cluster's CA and
  // token (--ca, --token-file, --credentials; cli/client_security.ts).
  "member list": ["net", "read"],
  "member add": ["net", "read"],
  "member promote": ["net", "read"],
  "member remove": ["net", "read"],
  "leader transfer": ["net", "read"],
  "mr status": ["net", "read"],
  "mr list": ["net", "read"],
  "mr cancel": ["net", "read"],
  "mr wait": ["net", "read"],
  // Bundles the app with `deno bundle` in a temporary directory, checks inputs and output.
  "mr submit": ["net", "read", "write", "env", "run"],
};

const ALL: readonly Deno.PermissionName[] = ["net", "read", "write", "env", "run", "sys", "ffi"];

/**
 * Revokes every capability `command` does not use (Deno.permissions.revokeSync), so a role
 * started with the union above still cannot, say, start a process. Unknown commands, and a
 * process started with --allow-all, keep all.
 */
export function dropPermissions(command: string): void {
  const keeps = KEEPS[command];
  if (!keeps) return;
  // FFI is in no set of ours: a process that has it was started with --allow-all on purpose
  // (tests, a debugging session) and keeps everything, e.g. /proc/self/fd for process_open_fds,
  // which Deno 2.9 opens only with every permission.
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return;
  for (const name of ALL) {
    // Without a path or host, revoke takes back every grant of that kind, partial ones too.
    if (!keeps.includes(name)) Deno.permissions.revokeSync({ name });
  }
}

/**
 * The one line a missing permission becomes: Deno's own message names the flag
 * ("Requires write access to "x", run again with the --allow-write flag").
 */
export function permissionMessage(command: string | undefined, err: Error): string {
  const who = command ? `${command}: ` : "";
  return `${who}missing a Deno permission: ${err.message.split("\n")[0]}`;
}

/**
 * The program's own source tree, when it runs from files: a worker's task thread (a Web Worker,
 * mr/task_thread.ts) loads its modules from there, which needs read access.
 */
function programDir(): string[] {
  const url = new URL("..", import.meta.url);
  return url.protocol === "file:" ? [fileURLToPath(url).replace(/\/$/, "")] : [];
}

/** Where a worker's app lives: the directory a worker must be able to read. */
function appDir(appPath: string): string {
  if (/^(https?|data):/.test(appPath)) return ".";
  const path = appPath.startsWith("file:") ? new URL(appPath).pathname : resolve(appPath);
  return dirname(path);
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
