/**
 * The two systems the KV benchmark compares, behind one interface: a 3-node raftmr cluster of
 * `serve` processes and a 3-member etcd cluster, both on loopback with their data on disk.
 */
import { writeWrkScript } from "./wrk.ts";
import type { CredentialPaths } from "../cli/credentials.ts";
import { sleep } from "../util/sleep.ts";

/** A running 3-node cluster the benchmark can load, inspect and break. */
export interface BenchCluster {
  readonly name: string;
  /** Base URL of the current leader's or a follower's HTTP endpoint. */
  url(target: "leader" | "follower"): Promise<string>;
  /** A wrk script for 100-byte PUTs or linearizable GETs over 1000 keys. */
  wrkScript(op: "put" | "get", dir: string): Promise<string>;
  /** Writes every key once so GETs find values. */
  preload(keys: number): Promise<void>;
  /** kill -9 the leader; ms until a write through a survivor succeeds; then restores the node. */
  failover(): Promise<number>;
  /** A counter that grows by one per election (the Raft term). */
  leaderChanges(): Promise<number>;
  /**
   * Stops every member in turn with SIGTERM and starts it again, under PUT load from
   * `connections` concurrent clients spread over the members still running.
   */
  rollingRestart(connections: number): Promise<RollingRestartResult>;
  stop(): Promise<void>;
}

/** What a rolling restart under load cost the writers. */
export interface RollingRestartResult {
  /** The longest time between two consecutive successful writes, in ms. */
  longestGapMs: number;
  ok: number;
  failed: number;
}

/**
 * A port free now on 127.0.0.1. The benchmark used fixed ports (17001, 26001, ...), so two runs
 * on a shared machine silently measured each other's clusters; each run now takes its own.
 */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Three free ports, one per member. */
function freePorts(): number[] {
  return [freePort(), freePort(), freePort()];
}

const KEYS = 1000;
const VALUE = "v".repeat(100);
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * Security for `bench kv --secure`: both systems get peer TLS with client certificates and
 * HTTPS from the same CA; raftmr also checks a bearer token on every request (etcd's own auth
 * is a user/password scheme, left off).
 */
export interface BenchSecurity {
  paths: CredentialPaths;
  ca: string;
  token: string;
}

interface Member {
  id: number;
  args: string[];
  child?: Deno.ChildProcess;
  url: string;
}

function spawn(program: string, args: string[], logPath: string): Deno.ChildProcess {
  const log = Deno.openSync(logPath, { write: true, create: true, append: true });
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Keep the member's output in its log file for post-mortems, off the benchmark's terminal.
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) log.writeSync(chunk);
  };
  Promise.all([pump(child.stdout), pump(child.stderr)]).finally(() => log.close()).catch(() => {});
  return child;
}

async function fetchWithTimeout(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient },
  ms: number,
): Promise<Response> {
  return await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
}

abstract class ProcessBenchCluster implements BenchCluster {
  abstract readonly name: string;
  protected members: Member[] = [];
  protected dir = "";
  /** What every control request carries: a client trusting the CA, the token (secure runs). */
  protected fetchInit: RequestInit & { client?: Deno.HttpClient } = {};
  protected security?: BenchSecurity;

  protected secure(security: BenchSecurity | undefined, token: boolean): void {
    if (!security) return;
    this.security = security;
    this.fetchInit = {
      client: Deno.createHttpClient({ caCerts: [security.ca] }),
      headers: token ? { authorization: `Bearer ${security.token}` } : {},
    };
  }

  protected abstract program(): string;
  protected abstract isLeader(member: Member): Promise<boolean>;
  protected abstract term(member: Member): Promise<number>;
  protected abstract put(baseUrl: string, key: string, value: string): Promise<boolean>;
  abstract wrkScript(op: "put" | "get", dir: string): Promise<string>;

  protected startMember(member: Member): void {
    member.child = spawn(this.program(), member.args, `${this.dir}/member-${member.id}.log`);
  }

  protected async leader(): Promise<Member> {
    for (let attempt = 0; attempt < 400; attempt++) {
      for (const member of this.members) {
        if (member.child && await this.isLeader(member).catch(() => false)) return member;
      }
      await sleep(25);
    }
    throw new Error(`${this.name}: no leader; see logs in ${this.dir}`);
  }

  async url(target: "leader" | "follower"): Promise<string> {
    const leader = await this.leader();
    if (target === "leader") return leader.url;
    return this.members.find((m) => m !== leader && m.child)!.url;
  }

  async preload(keys: number): Promise<void> {
    const leader = await this.leader();
    for (let i = 0; i < keys; i += 50) {
      await Promise.all(
        Array.from(
          { length: Math.min(50, keys - i) },
          (_, j) => this.put(leader.url, `key${i + j}`, VALUE),
        ),
      );
    }
  }

  async failover(): Promise<number> {
    const leader = await this.leader();
    const survivor = this.members.find((m) => m !== leader)!;
    // Let the cluster settle so every run starts from a healthy, caught-up cluster.
    await sleep(1000);
    leader.child!.kill("SIGKILL");
    const killedAt = performance.now();
    await leader.child!.status;
    leader.child = undefined;
    let elapsed = NaN;
    while (performance.now() - killedAt < 30_000) {
      if (await this.put(survivor.url, "failover", String(Date.now())).catch(() => false)) {
        elapsed = performance.now() - killedAt;
        break;
      }
      await sleep(5);
    }
    this.startMember(leader);
    await sleep(2000);
    return elapsed;
  }

  async leaderChanges(): Promise<number> {
    return await this.term(await this.leader());
  }

  async rollingRestart(connections: number): Promise<RollingRestartResult> {
    // Clients avoid a member once it is told to stop (as a load balancer draining it would), so
    // what is measured is the cluster's unavailability, not a client dialing a dead port.
    const draining = new Set<Member>();
    let running = true;
    let lastOk = performance.now();
    const result: RollingRestartResult = { longestGapMs: 0, ok: 0, failed: 0 };
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const live = this.members.filter((m) => m.child && !draining.has(m));
        if (live.length === 0) {
          await sleep(5);
          continue;
        }
        const member = live[(w + n) % live.length];
        const ok = await this.put(member.url, `key${(w * 7919 + n) % KEYS}`, VALUE)
          .catch(() => false);
        const now = performance.now();
        if (ok) {
          result.longestGapMs = Math.max(result.longestGapMs, now - lastOk);
          lastOk = now;
          result.ok++;
        } else {
          result.failed++;
        }
      }
    };
    const workers = Array.from({ length: connections }, (_, w) => worker(w));
    await sleep(1000);
    for (const member of this.members) {
      draining.add(member);
      try {
        member.child!.kill("SIGTERM");
      } catch (error) {
        console.error(
          `${this.name}: member ${member.id} could not be signalled (${error}); see ${this.dir}`,
        );
      }
      await member.child!.status;
      member.child = undefined;
      this.startMember(member);
      // Back once it answers its status endpoint again; then a second to catch up.
      for (let i = 0; i < 400; i++) {
        if (await this.term(member).then(() => true, () => false)) break;
        await sleep(25);
      }
      draining.delete(member);
      await sleep(1000);
    }
    running = false;
    await Promise.all(workers);
    return result;
  }

  async stop(): Promise<void> {
    for (const member of this.members) {
      if (!member.child) continue;
      try {
        member.child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await member.child.status;
      member.child = undefined;
    }
  }
}

/** A 3-node raftmr cluster of `serve` processes. */
export class RaftmrCluster extends ProcessBenchCluster {
  readonly name = "raftmr";

  static async start(dir: string, security?: BenchSecurity): Promise<RaftmrCluster> {
    const cluster = new RaftmrCluster();
    cluster.dir = dir;
    cluster.secure(security, true);
    await Deno.mkdir(dir, { recursive: true });
    const peerPorts = freePorts();
    const httpPorts = freePorts();
    const peers = [1, 2, 3].map((id) => `${id}=127.0.0.1:${peerPorts[id - 1]}`).join(",");
    for (const id of [1, 2, 3]) {
      const http = `127.0.0.1:${httpPorts[id - 1]}`;
      const node = security?.paths.nodes[id - 1];
      const secureArgs = security && node
        ? [
          ...["--peer-cert", node.cert, "--peer-key", node.key, "--peer-ca", security.paths.ca],
          ...["--auth-token-file", security.paths.token],
          ...["--http-cert", node.cert, "--http-key", node.key],
        ]
        : [];
      cluster.members.push({
        id,
        url: `${security ? "https" : "http"}://${http}`,
        args: [
          "run",
          "-A",
          MAIN,
          "serve",
          "--id",
          String(id),
          "--peers",
          peers,
          "--data-dir",
          `${dir}/node-${id}`,
          "--http",
          http,
          ...secureArgs,
        ],
      });
    }
    for (const member of cluster.members) cluster.startMember(member);
    await cluster.leader();
    return cluster;
  }

  protected program(): string {
    return Deno.execPath();
  }

  protected async isLeader(member: Member): Promise<boolean> {
    const status = await (await fetchWithTimeout(`${member.url}/status`, this.fetchInit, 1000))
      .json();
    return status.role === "leader";
  }

  protected async term(member: Member): Promise<number> {
    const status = await (await fetchWithTimeout(`${member.url}/status`, this.fetchInit, 1000))
      .json();
    return Number(status.term);
  }

  protected async put(baseUrl: string, key: string, value: string): Promise<boolean> {
    const response = await fetchWithTimeout(`${baseUrl}/v1/kv/${key}`, {
      ...this.fetchInit,
      method: "PUT",
      body: value,
    }, 2000);
    await response.body?.cancel();
    return response.ok;
  }

  async wrkScript(op: "put" | "get", dir: string): Promise<string> {
    const authorization = this.security ? `Bearer ${this.security.token}` : undefined;
    const requests = Array.from(
      { length: KEYS },
      (_, i) =>
        op === "put"
          ? { method: "PUT", path: `/v1/kv/key${i}`, body: VALUE, authorization }
          : { method: "GET", path: `/v1/kv/key${i}`, authorization },
    );
    return await writeWrkScript(`${dir}/raftmr-${op}.lua`, requests);
  }
}

const b64 = (s: string) => btoa(s);

/** A 3-member etcd cluster with its default settings. */
export class EtcdCluster extends ProcessBenchCluster {
  readonly name = "etcd";

  static async start(dir: string, security?: BenchSecurity): Promise<EtcdCluster> {
    const cluster = new EtcdCluster();
    cluster.dir = dir;
    cluster.secure(security, false);
    await Deno.mkdir(dir, { recursive: true });
    const peerPorts = freePorts();
    const clientPorts = freePorts();
    const scheme = security ? "https" : "http";
    const peerUrl = (id: number) => `${scheme}://127.0.0.1:${peerPorts[id - 1]}`;
    const initial = [1, 2, 3].map((id) => `e${id}=${peerUrl(id)}`).join(",");
    for (const id of [1, 2, 3]) {
      const client = `${scheme}://127.0.0.1:${clientPorts[id - 1]}`;
      const node = security?.paths.nodes[id - 1];
      // Peer TLS with client certificates (etcd's --peer-client-cert-auth) and client TLS.
      const secureArgs = security && node
        ? [
          ...["--cert-file", node.cert, "--key-file", node.key],
          ...["--peer-cert-file", node.cert, "--peer-key-file", node.key],
          ...["--peer-trusted-ca-file", security.paths.ca, "--peer-client-cert-auth"],
        ]
        : [];
      cluster.members.push({
        id,
        url: client,
        args: [
          "--name",
          `e${id}`,
          "--data-dir",
          `${dir}/e${id}`,
          "--listen-client-urls",
          client,
          "--advertise-client-urls",
          client,
          "--listen-peer-urls",
          peerUrl(id),
          "--initial-advertise-peer-urls",
          peerUrl(id),
          "--initial-cluster",
          initial,
          "--initial-cluster-state",
          "new",
          ...secureArgs,
        ],
      });
    }
    for (const member of cluster.members) cluster.startMember(member);
    await cluster.leader();
    return cluster;
  }

  protected program(): string {
    return "etcd";
  }

  async #status(
    member: Member,
  ): Promise<{ header: { member_id: string; raft_term: string }; leader: string }> {
    const response = await fetchWithTimeout(`${member.url}/v3/maintenance/status`, {
      ...this.fetchInit,
      method: "POST",
      body: "{}",
    }, 1000);
    return await response.json();
  }

  protected async isLeader(member: Member): Promise<boolean> {
    const status = await this.#status(member);
    return status.header.member_id === status.leader;
  }

  protected async term(member: Member): Promise<number> {
    return Number((await this.#status(member)).header.raft_term);
  }

  protected async put(baseUrl: string, key: string, value: string): Promise<boolean> {
    const response = await fetchWithTimeout(`${baseUrl}/v3/kv/put`, {
      ...this.fetchInit,
      method: "POST",
      body: JSON.stringify({ key: b64(key), value: b64(value) }),
    }, 2000);
    const body = await response.json().catch(() => ({}));
    return response.ok && body.error === undefined;
  }

  async wrkScript(op: "put" | "get", dir: string): Promise<string> {
    const requests = Array.from({ length: KEYS }, (_, i) =>
      op === "put"
        ? {
          method: "POST",
          path: "/v3/kv/put",
          body: JSON.stringify({ key: b64(`key${i}`), value: b64(VALUE) }),
          contentType: "application/json",
        }
        : {
          method: "POST",
          path: "/v3/kv/range",
          body: JSON.stringify({ key: b64(`key${i}`) }),
          contentType: "application/json",
        });
    return await writeWrkScript(`${dir}/etcd-${op}.lua`, requests);
  }
}
