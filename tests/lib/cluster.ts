/**
 * Test harness for real `raftmr serve` processes on 127.0.0.1: start a cluster, kill -9 and
 * restart nodes, and (optionally) route every peer link through a fault-injecting proxy so tests
 * can partition the network. Each node dials peer j at proxy(i→j), so cutting both proxies of a
 * pair isolates the pair in both directions.
 */
import { TcpProxy } from "./tcp_proxy.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1 (a small race is acceptable in tests). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Options for startCluster. */
export interface ClusterOptions {
  nodes?: number;
  /** Route peer links through TcpProxy instances (for partitions). */
  proxies?: boolean;
  /** Extra flags for every serve process (e.g. a small snapshot threshold). */
  extraArgs?: string[];
}

/** One node of a test cluster. */
export interface TestNode {
  id: number;
  peerPort: number;
  httpPort: number;
  dataDir: string;
  child?: Deno.ChildProcess;
  output: string[];
}

/** A running cluster of serve processes. */
export class TestCluster {
  readonly nodes: TestNode[];
  readonly root: string;
  readonly #proxies = new Map<string, TcpProxy>();
  readonly #extraArgs: string[];
  readonly #peerArgs = new Map<number, string>();

  private constructor(root: string, nodes: TestNode[], extraArgs: string[]) {
    this.root = root;
    this.nodes = nodes;
    this.#extraArgs = extraArgs;
  }

  /** Starts every node and waits until a leader is known. */
  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const count = options.nodes ?? 3;
    const root = await Deno.makeTempDir({ prefix: "raftmr-cluster-" });
    const nodes: TestNode[] = Array.from({ length: count }, (_, i) => ({
      id: i + 1,
      peerPort: freePort(),
      httpPort: freePort(),
      dataDir: `${root}/node-${i + 1}`,
      output: [],
    }));
    const cluster = new TestCluster(root, nodes, options.extraArgs ?? []);
    for (const node of nodes) {
      const entries: string[] = [];
      for (const peer of nodes) {
        let port = peer.peerPort;
        if (options.proxies && peer.id !== node.id) {
          const proxy = new TcpProxy({ hostname: "127.0.0.1", port: peer.peerPort });
          port = (await proxy.listen()).port;
          cluster.#proxies.set(`${node.id}->${peer.id}`, proxy);
        }
        entries.push(`${peer.id}=127.0.0.1:${port}`);
      }
      cluster.#peerArgs.set(node.id, entries.join(","));
    }
    for (const node of nodes) cluster.startNode(node.id);
    await cluster.waitForLeader();
    return cluster;
  }

  /** The node with this id. */
  node(id: number): TestNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new RangeError(`No node ${id}`);
    return node;
  }

  /** Base URL of a node's HTTP API. */
  url(id: number): string {
    return `http://127.0.0.1:${this.node(id).httpPort}`;
  }

  /** Starts (or restarts) a node's serve process on its data directory. */
  startNode(id: number): void {
    const node = this.node(id);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
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
        ...this.#extraArgs,
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    node.child = child;
    collect(child.stdout, node.output);
    collect(child.stderr, node.output);
  }

  /** kill -9 a node and wait for it to be gone. */
  async kill(id: number): Promise<void> {
    const node = this.node(id);
    if (!node.child) return;
    try {
      node.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await node.child.status;
    node.child = undefined;
  }

  /** Cuts (or restores) both directions between two nodes. */
  setLink(a: number, b: number, connected: boolean): void {
    for (const key of [`${a}->${b}`, `${b}->${a}`]) {
      const proxy = this.#proxies.get(key);
      if (!proxy) throw new Error("This cluster was started without proxies");
      proxy.setBlocked(!connected);
    }
  }

  /** Splits the cluster into groups: links inside a group work, links between them are cut. */
  partition(...groups: number[][]): void {
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a.id >= b.id) continue;
        const together = groups.some((g) => g.includes(a.id) && g.includes(b.id));
        this.setLink(a.id, b.id, together);
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
    for (const node of this.nodes) {
      if (!node.child) continue;
      const status = await this.status(node.id).catch(() => undefined);
      if (status?.role === "leader") found.push(node.id);
    }
    return found;
  }

  /** A node's /status JSON. */
  async status(id: number): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.url(id)}/status`);
    return await response.json();
  }

  /** Waits until some running node (optionally among `among`) leads; returns its id. */
  async waitForLeader(among?: number[], attempts = 300): Promise<number> {
    for (let i = 0; i < attempts; i++) {
      for (const node of this.nodes) {
        if (!node.child || (among && !among.includes(node.id))) continue;
        const status = await this.status(node.id).catch(() => undefined);
        if (status?.role === "leader") return node.id;
      }
      await sleep(50);
    }
    throw new Error(`No leader elected; outputs:\n${this.dump()}`);
  }

  /** Every node's captured output, for failure messages. */
  dump(): string {
    return this.nodes.map((n) => `--- node ${n.id}\n${n.output.join("").slice(-4000)}`).join("\n");
  }

  /** Stops every process and proxy and removes the data. */
  async stop(): Promise<void> {
    for (const node of this.nodes) await this.kill(node.id);
    for (const proxy of this.#proxies.values()) await proxy.close();
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

function collect(stream: ReadableStream<Uint8Array>, into: string[]): void {
  const decoder = new TextDecoder();
  (async () => {
    for await (const chunk of stream) into.push(decoder.decode(chunk));
  })().catch(() => {});
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
