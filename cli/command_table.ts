/**
 * The list of `raftmr` subcommands: each one's name and one-line summary, and how to load the
 * module that implements it. Loading is deferred until the command runs, so a process pays for
 * one command's modules, not all of them: `raftmr worker` (started once per worker by `mr run --processes`)
 * loads about 40 modules instead of about 130, and `raftmr --help` loads none. The import
 * specifiers are string literals, so `deno bundle` and `deno compile` still find every module.
 *
 * A command module takes its summary from here (summaryOf), so `raftmr --help` and `raftmr CMD
 * --help` print the same line without the summary being written twice.
 */
import type { Command } from "./command.ts";

/** One subcommand as `raftmr --help` lists it, and the loader of its implementation. */
export interface CommandEntry {
  /** One or two words, e.g. "serve" or "mr run". */
  name: string;
  summary: string;
  /** Imports the command's module and returns its Command (name equal to this entry's). */
  load(): Promise<Command>;
}

/** Every working subcommand, in the order --help lists them. */
export const COMMAND_TABLE: readonly CommandEntry[] = [
  {
    name: "serve",
    summary: "Run one Raft peer of the replicated key-value store",
    load: () => import("../kv/serve_cli.ts").then((m) => m.serveCommand),
  },
  {
    name: "cluster",
    summary: "Run a local cluster of serve processes until Ctrl-C",
    load: () => import("../kv/cluster_cli.ts").then((m) => m.clusterCommand),
  },
  {
    name: "kv",
    summary: "Read and write keys over the native protocol",
    load: () => import("../kv/kv_cli.ts").then((m) => m.kvCommand),
  },
  {
    name: "member list",
    summary: "List the cluster's voters and learners",
    load: () => import("../kv/member_cli.ts").then((m) => m.memberListCommand),
  },
  {
    name: "member add",
    summary: "Add a member (a learner unless --voter)",
    load: () => import("../kv/member_cli.ts").then((m) => m.memberAddCommand),
  },
  {
    name: "member promote",
    summary: "Make a caught-up learner a voter",
    load: () => import("../kv/member_cli.ts").then((m) => m.memberPromoteCommand),
  },
  {
    name: "member remove",
    summary: "Remove a member (the leader hands over leadership first)",
    load: () => import("../kv/member_cli.ts").then((m) => m.memberRemoveCommand),
  },
  {
    name: "leader transfer",
    summary: "Hand leadership to a voter (default: the most up-to-date one)",
    load: () => import("../kv/member_cli.ts").then((m) => m.leaderTransferCommand),
  },
  {
    name: "coordinator",
    summary:
      "Run a MapReduce coordinator: one map task per split of each INPUT, mr-out-<r> outputs",
    load: () => import("../mr/cli.ts").then((m) => m.coordinatorCommand),
  },
  {
    name: "worker",
    summary: "Run a MapReduce worker with an app module until the job is done",
    load: () => import("../mr/worker_cli.ts").then((m) => m.workerCommand),
  },
  {
    name: "mr run",
    summary:
      "Run a whole MapReduce job locally: a coordinator and N workers (threads or processes)",
    load: () => import("../mr/cli.ts").then((m) => m.mrRunCommand),
  },
  {
    name: "mr submit",
    summary: "Submit a MapReduce job to the Raft cluster; prints its id",
    load: () => import("../mr/jobs_cli.ts").then((m) => m.mrSubmitCommand),
  },
  {
    name: "mr status",
    summary: "Show one cluster job's state and progress",
    load: () => import("../mr/jobs_cli.ts").then((m) => m.mrStatusCommand),
  },
  {
    name: "mr list",
    summary: "List the cluster's jobs (running ones and the last 100 finished)",
    load: () => import("../mr/jobs_cli.ts").then((m) => m.mrListCommand),
  },
  {
    name: "mr cancel",
    summary: "Cancel a running cluster job",
    load: () => import("../mr/jobs_cli.ts").then((m) => m.mrCancelCommand),
  },
  {
    name: "mr wait",
    summary: "Wait for a cluster job to end: exit 0 when done, 1 when failed or cancelled",
    load: () => import("../mr/jobs_cli.ts").then((m) => m.mrWaitCommand),
  },
  {
    name: "certs",
    summary: "Create a cluster CA, node certificates and a client token (needs openssl)",
    load: () => import("./certs_cli.ts").then((m) => m.certsCommand),
  },
];

/** The summary of the command called `name`; throws on a name the table does not list. */
export function summaryOf(name: string): string {
  const entry = COMMAND_TABLE.find((e) => e.name === name);
  if (!entry) throw new RangeError(`No command named "${name}" in the command table`);
  return entry.summary;
}
