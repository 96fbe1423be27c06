/**
 * Test harness for real `raftmr serve` processes on 127.0.0.1: start a cluster, kill -9 and
 * restart nodes, and (optionally) route every peer link through a fault-injecting proxy so tests
 * can partition the network. Each node dials peer j at proxy(i→j), so cutting both proxies of a
 * pair isolates the pair in both directions (forwarded client requests included, since they
 * travel over the same peer links).
 */
import { fileURLToPath } from "node:url";
import { authHeaders, type TestCredentials, testCredentials } from "./credentials.ts";
import { type BlockMode, TcpProxy } from "./tcp_proxy.ts";
import { sleep } from "../../util/sleep.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
// Passed explicitly so the children resolve imports the same way whatever the test's cwd is.
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));
/** Bound on one harness HTTP call (a stalled node must not hang the harness). */
const PROBE_TIMEOUT_MS = 2_000;
/**
 * The least time waitForLeader() and waitForHttp() keep trying, whatever their attempt count:
 * on a machine at load 20+ a node takes seconds to start and an election after a restart
 * longer, and a probe that fails at once (connection refused) would use up attempts in no time.
 * Only a broken run waits this long.
 */
const MIN_WAIT_MS = 60_000;
/** How many times ProcessCluster.start() tries, on fresh ports, when a node's port was taken. */
const START_ATTEMPTS = 3;

/** Ports handed out by this process, never reused by it. */
const handedOut = new Set<number>();

/** Ports the Fetch standard refuses to connect to ("bad ports") that fall in our range. */
const FETCH_BLOCKED_PORTS = new Set([10080]);

const PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";

/** The text of the kernel's ephemeral port range, or undefined when it cannot be read. */
function portRangeText(): string | undefined {
  try {
    return Deno.readTextFileSync(PORT_RANGE_FILE);
  } catch {
    // Deno reads /proc/sys only with --allow-all, which `deno task test` does not give: ask cat.
  }
  try {
    const out = new Deno.Command("cat", { args: [PORT_RANGE_FILE], stderr: "null" }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The first port of the kernel's ephemeral range (outgoing connections take ports from it).
 * When it cannot be read: 32768, Linux's default and below every common default (IANA's, and
 * so macOS's and Windows', is 49152). Assuming 49152 on Linux put test ports in 32768-49151,
 * where outgoing connections took them ("Address already in use" on a node's restart).
 */
function ephemeralLow(): number {
  const low = Number(portRangeText()?.split(/\s+/)[0]);
  return Number.isInteger(low) && low > 12_000 ? low : 32_768;
}

/**
 * A TCP port on 127.0.0.1 that is free now, for a node to listen on (again after a restart).
 * Chosen at random below the ephemeral range: a port the kernel hands to bind(0) or to an
 * outgoing connection could be taken while its node is down and make the restart fail with
 * "Address already in use" (seen when several test runs share a machine). A collision with
 * another test process choosing the same random port remains possible, but unlikely.
 */
export function freePort(): number {
  const low = 10_000;
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || FETCH_BLOCKED_PORTS.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      continue; // In use.
    }
    handedOut.add(port);
    return port;
  }
  throw new Error("No free port found below the ephemeral range");
}

/** Options for ProcessCluster.start. */
export interface ProcessClusterOptions {
  nodes?: number;
  /** Route peer links through TcpProxy instances (for partitions). */
  proxies?: boolean;
  /** Extra flags for every serve process (e.g. a small snapshot threshold). */
  extraArgs?: string[];
  /**
   * Start without credentials (plain peer connections, no tokens), for tests that write raw
   * frames to a peer port. By default nodes use mutual TLS between peers and require the
   * test token from clients (net/handshake.ts), as `raftmr cluster` does.
   */
  insecure?: boolean;
  /** Run every node under this open-file limit (`ulimit -n` in a shell that execs the node). */
  openFileLimit?: number;
}

/** One node of a test cluster. */
export interface TestNode {
  id: number;
  peerPort: number;
  httpPort: number;
  dataDir: string;
  child?: Deno.ChildProcess;
  /** Resolves once the current child has exited and its stdout and stderr are collected. */
  exited?: Promise<Deno.CommandStatus>;
  output: string[];
}

/** The parts of GET /status the harness relies on. */
export interface NodeStatus {
  id: number;
  role: string;
  term: number;
  leader: number;
  commit: number;
  applied: number;
  [field: string]: unknown;
}

/** A running cluster of serve processes. */
export class ProcessCluster {
  readonly nodes: TestNode[];
  readonly root: string;
  readonly #proxies = new Map<string, TcpProxy>();
  readonly #extraArgs: string[];
  #openFileLimit?: number;
  /** Set by stop(): waits still polling give up. */
  #stopped = false;
  readonly #peerArgs = new Map<number, string>();
  /** Flags only one node is started with (e.g. --join for an added node). */
  readonly #nodeArgs = new Map<number, string[]>();
  /**
   * The voters, when membership changed: waitForLeader() then wants a majority of these rather
   * than of every node the harness ever started.
   */
  voters: number[] | undefined;
  /** The credentials every node uses; undefined for an insecure cluster. */
  credentials?: TestCredentials;

  private constructor(root: string, nodes: TestNode[], extraArgs: string[]) {
    this.root = root;
    this.nodes = nodes;
    this.#extraArgs = extraArgs;
  }

  /**
   * Starts every node and waits until a leader is known; on failure stops what it started.
   * A node that finds its port taken (another process, e.g. a test run beside this one, chose
   * the same free port before the node bound it) makes it start again on fresh ports.
   */
  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    for (let attempt = 1;; attempt++) {
      try {
        return await ProcessCluster.#startOnce(options);
      } catch (error) {
        const taken = /address already in use/i.test(String(error));
        if (!taken || attempt >= START_ATTEMPTS) throw error;
      }
    }
  }

  static async #startOnce(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const count = options.nodes ?? 3;
    const root = await Deno.makeTempDir({ prefix: "raftmr-cluster-" });
    const nodes: TestNode[] = Array.from({ length: count }, (_, i) => ({
      id: i + 1,
      peerPort: freePort(),
      httpPort: freePort(),
      dataDir: `${root}/node-${i + 1}`,
      output: [],
    }));
    const cluster = new ProcessCluster(root, nodes, options.extraArgs ?? []);
    try {
      if (!options.insecure) cluster.credentials = await testCredentials();
      cluster.#openFileLimit = options.openFileLimit;
      for (const node of nodes) {
        const entries: string[] = [];
        for (const peer of nodes) {
          let port = peer.peerPort;
          if (options.proxies && peer.id !== node.id) {
            const proxy = new TcpProxy({ hostname: "127.0.0.1", port: peer.peerPort });
            // Register before listening so stop() closes it even if listen() is the last step.
            cluster.#proxies.set(`${node.id}->${peer.id}`, proxy);
            port = (await proxy.listen()).port;
          }
          entries.push(`${peer.id}=127.0.0.1:${port}`);
        }
        cluster.#peerArgs.set(node.id, entries.join(","));
      }
      for (const node of nodes) cluster.startNode(node.id);
      // A node that exits now (a port taken, a bad flag) ends the wait at once.
      let started = false;
      const exited = new Promise<never>((_, reject) => {
        for (const node of nodes) {
          node.exited!.then(() => {
            if (!started) reject(new Error(`Node ${node.id} exited at start:\n${cluster.dump()}`));
          });
        }
      });
      exited.catch(() => {}); // Settled by the race below, or never looked at.
      const leader = cluster.waitForLeader();
      leader.catch(() => {}); // After a failed start, stop() ends its loop with an error.
      try {
        await Promise.race([leader, exited]);
      } finally {
        started = true;
      }
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The node with this id. */
  node(id: number): TestNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new RangeError(`No node ${id}`);
    return node;
  }

  /** Node ids, 1..n. */
  get ids(): number[] {
    return this.nodes.map((n) => n.id);
  }

  /** Ids of nodes whose process is running. */
  get running(): number[] {
    return this.nodes.filter((n) => n.child).map((n) => n.id);
  }

  /** Base URL of a node's HTTP API. */
  url(id: number): string {
    return `http://127.0.0.1:${this.node(id).httpPort}`;
  }

  /** "127.0.0.1:port" of a node's own peer (native protocol) listener, for KvClient. */
  peerAddress(id: number): string {
    return `127.0.0.1:${this.node(id).peerPort}`;
  }

  /**
   * Adds a node with fresh ports and an empty data directory, not started: its --peers lists
   * every node's own address and it starts with --join (add it as a member first).
   */
  addNode(): TestNode {
    const id = Math.max(...this.ids) + 1;
    const node: TestNode = {
      id,
      peerPort: freePort(),
      httpPort: freePort(),
      dataDir: `${this.root}/node-${id}`,
      output: [],
    };
    this.nodes.push(node);
    this.setPeers(id, this.ids);
    this.#nodeArgs.set(id, ["--join"]);
    return node;
  }

  /** Sets the --peers a node is started with next: these nodes' own peer addresses. */
  setPeers(id: number, ids: number[]): void {
    this.#peerArgs.set(
      id,
      ids.map((p) => `${p}=127.0.0.1:${this.node(p).peerPort}`).join(","),
    );
  }

  /** KvClient options that authenticate to this cluster (token and CA; none when insecure). */
  clientOptions(): { token?: string; ca?: string } {
    const c = this.credentials;
    return c ? { token: c.token, ca: c.ca } : {};
  }

  /** `raftmr kv` flags that authenticate to this cluster. */
  kvArgs(): string[] {
    const c = this.credentials;
    return c ? ["--ca", c.paths.ca, "--token-file", c.paths.token] : [];
  }

  /** The serve flags that give node `id` its credentials (none when insecure). */
  securityArgs(id: number): string[] {
    const c = this.credentials;
    if (!c) return [];
    const node = c.paths.nodes[id - 1];
    return [
      "--peer-cert",
      node.cert,
      "--peer-key",
      node.key,
      "--peer-ca",
      c.paths.ca,
      "--auth-token-file",
      c.paths.token,
    ];
  }

  /** The arguments of `deno` that run node `id`'s serve process (as startNode() runs it). */
  serveArgs(id: number): string[] {
    const node = this.node(id);
    return [
      "run",
      "-A",
      "--config",
      CONFIG,
      MAIN,
      "serve",
      "--id",
      String(id),
      "--peers",
      this.#peerArgs.get(id)!,
      "--data-dir",
      node.dataDir,
      "--http",
      `127.0.0.1:${node.httpPort}`,
      ...this.securityArgs(id),
      ...this.#extraArgs,
      ...(this.#nodeArgs.get(id) ?? []),
    ];
  }

  /** Starts (or restarts) a node's serve process on its data directory. */
  startNode(id: number): void {
    const node = this.node(id);
    if (node.child) throw new Error(`Node ${id} is already running`);
    const args = this.serveArgs(id);
    // `exec` keeps the pid, so signals reach the node itself.
    const limit = this.#openFileLimit;
    const [program, argv] = limit === undefined
      ? [Deno.execPath(), args]
      : ["sh", ["-c", `ulimit -n ${limit} && exec "$0" "$@"`, Deno.execPath(), ...args]];
    const child = new Deno.Command(program, {
      args: argv,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    node.child = child;
    node.output.push(`=== process started (pid ${child.pid})\n`);
    const drained = Promise.all([
      collect(child.stdout, node.output),
      collect(child.stderr, node.output),
    ]);
    // Logged whatever the cause (our signal, a crash, someone else's signal) so dump() shows it.
    node.exited = Promise.all([child.status, drained]).then(([status]) => {
      node.output.push(`=== process exited (code ${status.code}, signal ${status.signal})\n`);
      return status;
    });
  }

  /** kill -9 a node and wait until it is gone and its output is collected. */
  async kill(id: number): Promise<void> {
    await this.#signal(id, "SIGKILL");
  }

  /** Sends SIGTERM and returns the exit code once the process has exited. */
  async terminate(id: number): Promise<number> {
    return await this.#signal(id, "SIGTERM");
  }

  async #signal(id: number, signal: Deno.Signal): Promise<number> {
    const node = this.node(id);
    const child = node.child;
    if (!child) return -1;
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await node.exited!;
    node.child = undefined;
    return status.code;
  }

  /**
   * Cuts (or restores) both directions between two nodes. "reset" (default) drops connections
   * at once; "stall" black-holes them like a real partition and delivers the held bytes late,
   * on healing.
   */
  setLink(a: number, b: number, connected: boolean, mode: BlockMode = "reset"): void {
    for (const key of [`${a}->${b}`, `${b}->${a}`]) {
      const proxy = this.#proxies.get(key);
      if (!proxy) throw new Error("This cluster was started without proxies");
      proxy.setBlocked(!connected, mode);
    }
  }

  /**
   * Delays every chunk on both proxies between two nodes by `ms` from now on (0 = none), in
   * both directions; byte order is preserved.
   */
  setLinkDelay(a: number, b: number, ms: number): void {
    for (const key of [`${a}->${b}`, `${b}->${a}`]) {
      const proxy = this.#proxies.get(key);
      if (!proxy) throw new Error("This cluster was started without proxies");
      proxy.setDelayMs(ms);
    }
  }

  /** Splits the cluster into groups: links inside a group work, links between them are cut. */
  partition(...groups: number[][]): void {
    this.partitionWith("reset", ...groups);
  }

  /** partition() with the given blocking mode for the cut links. */
  partitionWith(mode: BlockMode, ...groups: number[][]): void {
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a.id >= b.id) continue;
        const together = groups.some((g) => g.includes(a.id) && g.includes(b.id));
        this.setLink(a.id, b.id, together, mode);
      }
    }
  }

  /** Restores every link. */
  heal(): void {
    for (const proxy of this.#proxies.values()) proxy.setBlocked(false);
  }

  /** The node ids whose /status says they lead, among running nodes. */
  async leaders(): Promise<number[]> {
    const found: number[] = [];
    for (const id of this.running) {
      const status = await this.status(id).catch(() => undefined);
      if (status?.role === "leader") found.push(id);
    }
    return found;
  }

  /** A node's /status JSON (throws when the node does not answer in time). */
  async status(id: number): Promise<NodeStatus> {
    const response = await fetchWithTimeout(
      `${this.url(id)}/status`,
      { headers: authHeaders() },
      PROBE_TIMEOUT_MS,
    );
    return await response.json();
  }

  /**
   * A node's /status, asked again until it answers (a loaded node may miss a 2 s probe);
   * throws after `attempts` tries and at least MIN_WAIT_MS.
   */
  async answeredStatus(id: number, attempts = 400): Promise<NodeStatus> {
    const floor = performance.now() + MIN_WAIT_MS;
    let last: unknown;
    for (let i = 0; i < attempts || performance.now() < floor; i++) {
      try {
        return await this.status(id);
      } catch (error) {
        last = error;
      }
      await sleep(50);
    }
    throw new Error(`Node ${id} never answered /status: ${last}; outputs:\n${this.dump()}`);
  }

  /** Every running node's status (undefined for one that does not answer). */
  async statuses(): Promise<Map<number, NodeStatus | undefined>> {
    const entries = await Promise.all(
      this.running.map(async (id) => [id, await this.status(id).catch(() => undefined)] as const),
    );
    return new Map(entries);
  }

  /**
   * Waits until a running node (optionally among `among`) leads and a majority of the whole
   * cluster acknowledges it in the same term (so a deposed leader cut off in a minority, which
   * may still believe it leads until CheckQuorum demotes it, is not returned); returns its id.
   */
  async waitForLeader(among?: number[], attempts = 400): Promise<number> {
    const majority = Math.floor((this.voters ?? this.nodes).length / 2) + 1;
    const floor = performance.now() + MIN_WAIT_MS;
    for (let i = 0; i < attempts || performance.now() < floor; i++) {
      if (this.#stopped) throw new Error("The cluster was stopped while waiting for a leader");
      const statuses = await this.statuses();
      for (const [id, status] of statuses) {
        if (status?.role !== "leader" || (among && !among.includes(id))) continue;
        let votes = 0;
        for (const other of statuses.values()) {
          if (other?.leader === id && other.term === status.term) votes++;
        }
        if (votes >= majority) return id;
      }
      await sleep(50);
    }
    throw new Error(`No leader elected; outputs:\n${this.dump()}`);
  }

  /** Waits until a (re)started node answers /status (attempts, and at least MIN_WAIT_MS). */
  async waitForHttp(id: number, attempts = 400): Promise<void> {
    await this.answeredStatus(id, attempts);
  }

  /**
   * Every node's captured output (the last `chars` of each), for failure messages. Peer
   * found/lost lines are counted rather than shown: a partition makes them repeat every few
   * hundred ms and they would push everything else out.
   */
  dump(chars = 6000): string {
    return this.nodes.map((n) => {
      const lines = n.output.join("").split("\n");
      const noisy = /: Peer \d+ (found|lost)/;
      const kept = lines.filter((line) => !noisy.test(line));
      const dropped = lines.length - kept.length;
      const note = dropped > 0 ? `(${dropped} peer found/lost lines not shown)\n` : "";
      return `--- node ${n.id}\n${note}${kept.join("\n").slice(-chars)}`;
    }).join("\n");
  }

  /** Stops every process and proxy and removes the data. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.nodes.map((n) => this.kill(n.id)));
    for (const proxy of this.#proxies.values()) await proxy.close();
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

async function collect(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) into.push(decoder.decode(chunk, { stream: true }));
  } catch {
    // The process died mid-write: what was read is kept.
  }
}

/**
 * fetch() with a deadline; the body is left to the caller. Uses an explicit timer (cleared on
 * every path) rather than AbortSignal.timeout so no timer outlives the call.
 */
export async function fetchWithTimeout(
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("Request timed out")), timeoutMs);
  try {
    return await fetch(url, { ...init, signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}
