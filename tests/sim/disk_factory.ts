/**
 * Simulator storage on real DiskStorage in a temporary directory: a crash closes a node's
 * storage and a restart recovers it from the WAL and snapshot files. Shared by the disk
 * scenarios and the randomized sweep (SWEEP_STORAGE=disk).
 */
import { join } from "node:path";
import { DiskStorage } from "../../persist/disk_storage.ts";
import type { NodeId } from "../../raft/types.ts";
import type { SimStorageFactory } from "./cluster.ts";

/** Small segments so that rotation and segment deletion happen within a short scenario. */
export const SEGMENT_BYTES = 4096;

/** A storage factory on disk that also hands out each node's open storage. */
export interface DiskFactory extends SimStorageFactory {
  /** The open storage of node `id` (undefined while crashed). */
  current(id: NodeId): DiskStorage | undefined;
}

/** Opens each node's DiskStorage under one temporary directory, removed by cleanup(). */
export function diskFactory(): DiskFactory {
  let root: string | undefined;
  const open = new Map<NodeId, DiskStorage>();
  return {
    async open(id, peers) {
      root ??= await Deno.makeTempDir({ prefix: "raftmr-disk-sim-" });
      const s = await DiskStorage.open(join(root, `n${id}`), {
        peers,
        segmentBytes: SEGMENT_BYTES,
        log: () => {},
      });
      open.set(id, s);
      return s;
    },
    async crash(id, storage) {
      open.delete(id);
      await storage.close();
    },
    async cleanup() {
      for (const s of open.values()) await s.close();
      open.clear();
      if (root) await Deno.remove(root, { recursive: true });
    },
    current: (id) => open.get(id),
  };
}
