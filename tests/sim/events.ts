/**
 * The simulator's flight recorder: the last few hundred events of a run (sends, drops, crashes,
 * restarts, link changes, role changes, commits) in a ring buffer, printed with the seed when a
 * run fails, so the failure can be read before it is replayed. Events keep references and are
 * formatted only when printed: a passing run pays one small object per event.
 */
import type { Message, NodeId } from "../../raft/types.ts";
import { describeMessage } from "../lib/raft_text.ts";

/** One recorded event: a message sent or dropped, or a line of text about a node or the net. */
export type SimEvent =
  | { at: number; kind: "send" | "dup"; msg: Message }
  | { at: number; kind: "drop"; msg: Message; why: string }
  | { at: number; kind: "note"; text: string };

/** A fixed-size ring of the most recent events. */
export class EventRing {
  readonly capacity: number;
  readonly #buf: (SimEvent | undefined)[];
  #next = 0;
  #total = 0;

  /** Keeps the last `capacity` events (at least 1). */
  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
    this.#buf = new Array(this.capacity);
  }

  /** Events recorded since the start, including those the ring has forgotten. */
  get total(): number {
    return this.#total;
  }

  /** Records one event, forgetting the oldest when full. */
  add(e: SimEvent): void {
    this.#buf[this.#next] = e;
    this.#next = (this.#next + 1) % this.capacity;
    this.#total++;
  }

  /** Records a line of text about node `node` (or the network when undefined). */
  note(at: number, text: string, node?: NodeId): void {
    this.add({ at, kind: "note", text: node === undefined ? text : `node ${node}: ${text}` });
  }

  /** The events still held, oldest first, one line each with the virtual time in ms. */
  lines(): string[] {
    const out: string[] = [];
    const held = Math.min(this.#total, this.capacity);
    const start = this.#total > this.capacity ? this.#next : 0;
    for (let i = 0; i < held; i++) {
      const e = this.#buf[(start + i) % this.capacity]!;
      const t = e.at.toFixed(1).padStart(9);
      if (e.kind === "note") out.push(`${t}  ${e.text}`);
      else if (e.kind === "drop") out.push(`${t}  drop ${describeMessage(e.msg)} (${e.why})`);
      else out.push(`${t}  ${e.kind} ${describeMessage(e.msg)}`);
    }
    return out;
  }
}
