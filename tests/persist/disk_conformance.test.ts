import { DiskStorage } from "../../persist/disk_storage.ts";
import { storageConformance, type StorageHarness } from "./storage_conformance.ts";

storageConformance("DiskStorage", async (peers): Promise<StorageHarness> => {
  const dir = await Deno.makeTempDir({ prefix: "raftmr-disk-" });
  const open = () => DiskStorage.open(dir, { peers, segmentBytes: 512, log: () => {} });
  const h: StorageHarness = {
    storage: await open(),
    async restart() {
      await h.storage.close();
      h.storage = await open();
      return h.storage;
    },
    async cleanup() {
      await h.storage.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return h;
});
