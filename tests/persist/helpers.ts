/** Helpers the storage tests share: a scratch directory, and DiskStorage opened for tests. */
import { DiskStorage } from "../../persist/disk_storage.ts";
import { withTempDir } from "../lib/run.ts";

/** Runs `fn` with a fresh temporary directory, removed afterwards whatever happens. */
export function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir("raftmr-persist-", fn);
}

/**
 * Opens DiskStorage for a 3-node cluster, collecting its log lines into `lines`. WAL
 * preallocation is on (its default run, capped at the segment size) unless `preallocateBytes`
 * says otherwise.
 */
export function open(
  dir: string,
  lines: string[] = [],
  segmentBytes = 1 << 20,
  preallocateBytes?: number,
): Promise<DiskStorage> {
  return DiskStorage.open(dir, {
    peers: [1, 2, 3],
    segmentBytes,
    preallocateBytes,
    log: (l) => lines.push(l),
  });
}
