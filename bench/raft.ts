/**
 * Raft core throughput in one process: a 3-node cluster of RaftNodes over an in-memory
 * transport, C concurrent clients each proposing 100-byte commands back to back. With --disk,
 * every save() also writes its entries to a temp file and fdatasyncs it (the WAL's cost), so the
 * figure shows what group commit buys. Reports commits/s and mean latency; never pass/fail.
 *
 *   deno task bench raft [--seconds 2] [--disk]
 */
import { RaftNode } from "../raft/node.ts";
import { MemoryStorage } from "../raft/storage.ts";
import type { Entry, HardState, Message, NodeId, Snapshot, StateMachine } from "../raft/types.ts";
import { printTable } from "./table.ts";
import { sleep } from "../util/sleep.ts";

class CountingMachine implements StateMachine {
  n = 0;
  apply(_e: Entry): unknown {
    return ++this.n;
  }
  snapshot(): Uint8Array {
    return new Uint8Array(8);
  }
  restore(): void {}
}

/** MemoryStorage that also appends each batch to a file and fdatasyncs it. */
class SyncedStorage extends MemoryStorage {
  #file: Deno.FsFile;
  constructor(peers: number[], file: Deno.FsFile) {
    super(peers);
    this.#file = file;
  }
  #prev: HardState = { term: 0, vote: 0, commit: 0 };
  override async save(hs: HardState | undefined, entries: Entry[], snap?: Snapshot): Promise<void> {
    await super.save(hs, entries, snap);
    let size = 16;
    for (const e of entries) size += e.data.length + 17;
    await this.#file.write(new Uint8Array(size));
    // Like DiskStorage (and etcd's MustSync): a moved commit index alone needs no sync.
    const mustSync = entries.length > 0 || snap !== undefined ||
      (hs !== undefined && (hs.term !== this.#prev.term || hs.vote !== this.#prev.vote));
    if (hs) this.#prev = hs;
    if (mustSync) await this.#file.syncData();
  }
}

async function run(clients: number, seconds: number, disk: boolean, dir: string) {
  const ids = [1, 2, 3];
  const nodes = new Map<NodeId, RaftNode>();
  const files: Deno.FsFile[] = [];
  for (const id of ids) {
    let storage: MemoryStorage;
    if (disk) {
      const f = await Deno.open(`${dir}/wal-${clients}-${id}`, { write: true, create: true });
      files.push(f);
      storage = new SyncedStorage(ids, f);
    } else {
      storage = new MemoryStorage(ids);
    }
    const node = new RaftNode({
      id,
      peers: ids,
      storage,
      stateMachine: new CountingMachine(),
      send: (msgs: Message[]) => {
        for (const m of msgs) queueMicrotask(() => nodes.get(m.to)?.step(m));
      },
      config: { snapshotEntries: 100_000 },
    });
    nodes.set(id, node);
    node.start();
  }
  let leader: RaftNode | undefined;
  while (!leader) {
    await sleep(10);
    leader = [...nodes.values()].find((n) => n.status().role === "leader");
  }
  const data = new Uint8Array(100);
  let done = 0;
  let latency = 0;
  const end = performance.now() + seconds * 1000;
  const client = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await leader!.propose(data);
      latency += performance.now() - t0;
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  const elapsed = (performance.now() - t0) / 1000;
  const saves = leader.metrics.saves;
  for (const n of nodes.values()) await n.stop();
  for (const f of files) f.close();
  return { ops: done / elapsed, lat: latency / done, perSave: leader.metrics.savedEntries / saves };
}

/** Entry point for `deno task bench raft`. */
export async function main(args: string[]): Promise<void> {
  const disk = args.includes("--disk");
  const si = args.indexOf("--seconds");
  const seconds = si >= 0 ? Number(args[si + 1]) : 2;
  const dir = await Deno.makeTempDir({ prefix: "raftmr-bench-raft-" });
  try {
    const rows: string[][] = [];
    for (const c of [1, 8, 64]) {
      const r = await run(c, seconds, disk, dir);
      rows.push([
        String(c),
        r.ops.toFixed(0),
        r.lat.toFixed(3),
        r.perSave.toFixed(1),
      ]);
    }
    console.log(`3 in-process nodes, 100-byte commands, ${disk ? "fdatasync per save" : "memory"}`);
    printTable(["clients", "commits/s", "mean latency ms", "entries per leader save"], rows);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
