import { MemoryStorage } from "../../raft/storage.ts";
import { storageConformance, type StorageHarness } from "./storage_conformance.ts";

// The in-memory reference implementation must pass the same contract cases as DiskStorage.
storageConformance("MemoryStorage", (peers): Promise<StorageHarness> => {
  const storage = new MemoryStorage(peers);
  return Promise.resolve({
    storage,
    restart: () => Promise.resolve(storage),
    cleanup: () => storage.close(),
  });
});
