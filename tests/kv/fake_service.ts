/** Test helper: an in-memory KvService over a real KvStateMachine. */
import { encodeCommand } from "../../kv/commands.ts";
import { type KvService, type KvWrite, TimeoutError } from "../../kv/service.ts";
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
  status() {
    return { id: 1, role: "leader", term: 3, progress: { 2: { match: 4, next: 5 } } };
  }
  metricsText() {
    return "# TYPE raftmr_proposals_total counter\nraftmr_proposals_total 7\n";
  }
  leaderKnown() {
    return this.leader;
  }
}
