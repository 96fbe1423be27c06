/**
 * The tombstone a removed node leaves in its data directory. The removal is committed in the
 * cluster's log, but this node may not have persisted that commit (a commit index is synced
 * lazily), so on restart its own log could still show it as a member and it would campaign in
 * vain. The marker makes "removed" durable locally: start-up refuses a marked directory.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../persist/atomic_file.ts";

const FILE = "REMOVED";

/** What the marker records. */
export interface RemovalRecord {
  id: number;
  clusterId?: string;
  /** The configuration index at which this node saw itself removed. */
  index: number;
}

/** Writes the marker (durable on resolve). */
export async function markRemoved(dataDir: string, record: RemovalRecord): Promise<void> {
  await writeFileAtomic(join(dataDir, FILE), JSON.stringify(record) + "\n");
}

/** Reads the marker; undefined when the directory has none. */
export async function readRemoved(dataDir: string): Promise<RemovalRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dataDir, FILE));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const r = JSON.parse(text) as RemovalRecord;
    return { id: Number(r.id), clusterId: r.clusterId, index: Number(r.index) };
  } catch {
    return { id: 0, index: 0 };
  }
}

/** The refusal message for a marked directory. */
export function removedMessage(r: RemovalRecord): string {
  return `Node ${r.id} was removed from the cluster${r.clusterId ? ` ${r.clusterId}` : ""} ` +
    `(configuration at index ${r.index}): its data directory cannot serve again; to bring this ` +
    `machine back, wipe the directory, add it as a new member with a new id (raftmr member add) ` +
    `and start it with --join`;
}
