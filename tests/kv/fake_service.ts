/** Test helper: an in-memory KvService over a real KvStateMachine. */
import { encodeCommand } from "../../kv/commands.ts";
import { type KvService, type KvWrite, TimeoutError } from "../../kv/service.ts";
import type { NodeReport } from "../../kv/node_status.ts";
import { KvStateMachine } from "../../kv/state_machine.ts";

/** An in-memory KvService over a real state machine, recording what it was asked. */
export class FakeService implements KvService {
  sm = new KvStateMachine();
  index = 0;
  writes: KvWrite[] = [];
  reads: { key: string; stale: boolean }[] = [];
  /** When set, every request fails with this error without doing anything. */
  failWith: Error | undefined;
  /** The next this-many writes are applied but answered with a TimeoutError (lost reply). */
  loseReplies = 0;
  leader = true;
  write(command: KvWrite) {
    if (this.failWith) return Promise.reject(this.failWith);
    this.writes.push(command);
    const index = ++this.index;
    const data = encodeCommand({ ...command, time: 0 });
    const result = this.sm.apply({ index, term: 1, data })!;
    if (this.loseReplies > 0) {
      this.loseReplies--;
      return Promise.reject(new TimeoutError("Reply lost"));
    }
    return Promise.resolve({ index, result });
  }
  read(key: string, options: { stale: boolean }) {
    if (this.failWith) return Promise.reject(this.failWith);
    this.reads.push({ key, stale: options.stale });
    return Promise.resolve({ value: this.sm.get(key), index: this.index });
  }
  status(): NodeReport {
    return {
      id: 1,
      role: "leader",
      term: 3,
      leader: 1,
      commit: 5,
      applied: 5,
      lastIndex: 5,
      snapshotIndex: 0,
      progress: {
        2: { match: 4, next: 5, state: "replicate", recentActive: true, logWentBackwards: false },
      },
      voters: [1, 2],
      learners: [],
      configIndex: 2,
      configChanges: [{ index: 2, change: "formed cluster 0123456789abcdef" }],
      transferee: 0,
      clusterId: "0123456789abcdef",
      walBytes: 2048,
      walAllocatedBytes: 4 << 20,
      counters: {
        proposals: 7,
        proposalsDropped: 0,
        applied: 5,
        readIndexes: 0,
        electionsStarted: 1,
        leaderChanges: 1,
        snapshotsTaken: 0,
        snapshotsInstalled: 0,
        snapshotsSent: 0,
        saves: 3,
        savedEntries: 5,
        saveMsTotal: 28.579314000001773,
        saveMsMax: 12.5,
        messagesSent: 9,
        messagesDropped: 0,
        followerLogRegressions: 0,
        confChanges: 1,
        leaderTransfers: 0,
      },
      keys: this.sm.size,
      sessions: 0,
      peers: { 1: "127.0.0.1:7001", 2: "127.0.0.1:7002" },
      http: "127.0.0.1:8001",
    };
  }
  metricsText() {
    return "# TYPE raftmr_proposals_total counter\nraftmr_proposals_total 7\n";
  }
  leaderKnown() {
    return this.leader;
  }
}
