/**
 * A small interpreter for trace tests in the spirit of etcd's datadriven testdata: a script of
 * commands against RawNodes over a hand-driven network, each followed by `----` and the trace it
 * must print. The driver's steps (take a Ready, send what may go early, persist, send what had
 * to wait, advance, deliver) are separate commands, so the ordering rules of the core show up
 * in the text and a change to one shows up as a diff of the expected trace.
 *
 * Commands (node ids are numbers):
 *   add-nodes 1 2 3      start RawNodes that all know each other (rand() is always 0)
 *   wipe 3               replace node 3 by a fresh one with empty storage (a wiped data dir)
 *   campaign 1 | tick 1 [n] | propose 1 DATA | read-index 1
 *   ready 1              take a Ready and print it; it stays pending until `advance 1`
 *   send 1               queue the pending Ready's `messages` on the network
 *   persist 1            save its hard state and entries to the node's storage
 *   send-after-save 1    queue its `messagesAfterSave` (only once persisted)
 *   advance 1            apply its committed entries and call advance()
 *   deliver [ids...]     deliver the queued messages addressed to ids (default: all), in order
 *   process 1            ready, send, persist, send-after-save and advance in one go
 *   stabilize            process every node and deliver everything until nothing is left
 *   status 1             role, term, leader, commit, applied, last index and progress
 *
 * After every command, the warnings the nodes' cores raised are printed too.
 */
import { RawNode } from "../../raft/raw_node.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { Entry, Message, NodeId, Ready } from "../../raft/types.ts";
import { describeMessage } from "../lib/raft_text.ts";

interface TraceNode {
  raw: RawNode;
  storage: MemoryStorage;
  pending: Ready | undefined;
  persisted: boolean;
  /** Which of the pending Ready's two message lists were queued already. */
  sent: { early: boolean; afterSave: boolean };
}

/** One command of a script with the output it expects. */
export interface TraceCase {
  /** 1-based line of the command. */
  line: number;
  command: string;
  expected: string;
  /** Lines [outStart, outEnd) (0-based) hold the expected output. */
  outStart: number;
  outEnd: number;
}

const dec = new TextDecoder();

function entryText(e: Entry): string {
  return `${e.index}/${e.term} ${
    e.data.length === 0 ? "(no-op)" : JSON.stringify(dec.decode(e.data))
  }`;
}

/** Splits a script into commands and their expected output (ended by a blank line). */
export function parseTrace(text: string): TraceCase[] {
  const lines = text.split("\n");
  const cases: TraceCase[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) {
      i++;
      continue;
    }
    if (lines[i + 1]?.trim() !== "----") {
      throw new SyntaxError(`Invalid trace script: line ${i + 1} needs "----" after it`);
    }
    let j = i + 2;
    const out: string[] = [];
    while (j < lines.length && lines[j].trim() !== "") out.push(lines[j++]);
    cases.push({
      line: i + 1,
      command: line,
      expected: out.join("\n"),
      outStart: i + 2,
      outEnd: j,
    });
    i = j;
  }
  return cases;
}

/** The script `text` with each case's expected output replaced by `actual[i]` (comments kept). */
export function rewriteTrace(text: string, cases: TraceCase[], actual: string[]): string {
  const lines = text.split("\n");
  for (let k = cases.length - 1; k >= 0; k--) {
    const c = cases[k];
    lines.splice(c.outStart, c.outEnd - c.outStart, ...actual[k].split("\n"));
  }
  return lines.join("\n");
}

/** Runs commands one at a time against one cluster; each returns its trace text. */
export class TraceRunner {
  readonly #nodes = new Map<NodeId, TraceNode>();
  #peers: NodeId[] = [];
  #network: Message[] = [];

  /** Runs one command line and returns what it printed (never empty). */
  run(command: string): string {
    const [name, ...args] = command.split(/\s+/);
    const ids = args.map(Number);
    const out: string[] = [];
    switch (name) {
      case "add-nodes":
        this.#peers = ids;
        for (const id of ids) this.#boot(id);
        break;
      case "wipe":
        this.#node(ids[0]);
        this.#boot(ids[0]);
        break;
      case "campaign":
        this.#node(ids[0]).raw.campaign();
        break;
      case "tick":
        for (let k = 0; k < (ids[1] || 1); k++) this.#node(ids[0]).raw.tick();
        break;
      case "propose":
        out.push(`index ${this.#node(ids[0]).raw.propose(new TextEncoder().encode(args[1]))}`);
        break;
      case "read-index":
        out.push(`ctx ${this.#node(ids[0]).raw.readIndex()}`);
        break;
      case "ready":
        this.#ready(ids[0], out);
        break;
      case "send":
        this.#sendEarly(ids[0], out);
        break;
      case "persist":
        this.#persist(ids[0]);
        break;
      case "send-after-save":
        this.#sendAfterSave(ids[0], out);
        break;
      case "advance":
        this.#advance(ids[0], out);
        break;
      case "deliver":
        this.#deliver(ids.length > 0 ? new Set(ids) : undefined, out);
        break;
      case "process":
        this.#process(ids[0], out);
        break;
      case "stabilize":
        this.#stabilize(out);
        break;
      case "status":
        this.#status(ids[0], out);
        break;
      default:
        throw new Error(`Unknown trace command: ${name}`);
    }
    for (const [id, n] of [...this.#nodes].sort((a, b) => a[0] - b[0])) {
      for (const line of n.raw.takeWarnings().lines) out.push(`warning from ${id}: ${line}`);
    }
    return out.length > 0 ? out.join("\n") : "ok";
  }

  #boot(id: NodeId): void {
    const storage = new MemoryStorage(this.#peers);
    const raw = new RawNode({ id, peers: this.#peers, storage, rand: () => 0 });
    this.#nodes.set(id, {
      raw,
      storage,
      pending: undefined,
      persisted: false,
      sent: { early: false, afterSave: false },
    });
  }

  #node(id: NodeId): TraceNode {
    const n = this.#nodes.get(id);
    if (!n) throw new RangeError(`No such node: ${id}`);
    return n;
  }

  #pendingOf(id: NodeId): Ready {
    const rd = this.#node(id).pending;
    if (!rd) throw new Error(`Node ${id} has no pending Ready`);
    return rd;
  }

  #ready(id: NodeId, out: string[]): void {
    const n = this.#node(id);
    if (n.pending) throw new Error(`Node ${id} still has a pending Ready`);
    if (!n.raw.hasReady()) {
      out.push(`${id}: no Ready`);
      return;
    }
    const rd = n.pending = n.raw.ready();
    n.persisted = !rd.hardState && rd.entries.length === 0 && !rd.snapshot;
    n.sent = { early: false, afterSave: false };
    out.push(`Ready ${id}:`);
    if (rd.hardState) {
      const h = rd.hardState;
      out.push(`  HardState term=${h.term} vote=${h.vote} commit=${h.commit}`);
    }
    const list = (title: string, items: string[]) => {
      if (items.length > 0) out.push(`  ${title}:`, ...items.map((s) => `    ${s}`));
    };
    list("Entries", rd.entries.map(entryText));
    list("Messages", rd.messages.map(describeMessage));
    list("MessagesAfterSave", rd.messagesAfterSave.map(describeMessage));
    list("CommittedEntries", rd.committedEntries.map(entryText));
    list("ReadStates", rd.readStates.map((r) => `ctx=${r.ctx} index=${r.index}`));
  }

  #sendEarly(id: NodeId, out: string[]): void {
    const n = this.#node(id);
    const rd = this.#pendingOf(id);
    if (!n.sent.early) this.#queue(rd.messages, out);
    n.sent.early = true;
  }

  #sendAfterSave(id: NodeId, out: string[]): void {
    const n = this.#node(id);
    const rd = this.#pendingOf(id);
    if (!n.persisted) throw new Error(`Node ${id}: messagesAfterSave before persist`);
    if (!n.sent.afterSave) this.#queue(rd.messagesAfterSave, out);
    n.sent.afterSave = true;
  }

  #queue(msgs: Message[], out: string[]): void {
    for (const m of msgs) {
      this.#network.push(m);
      out.push(`queued ${describeMessage(m)}`);
    }
  }

  #persist(id: NodeId): void {
    const n = this.#node(id);
    const rd = this.#pendingOf(id);
    void n.storage.save(rd.hardState, rd.entries, rd.snapshot);
    n.persisted = true;
  }

  #advance(id: NodeId, out: string[]): void {
    const n = this.#node(id);
    const rd = this.#pendingOf(id);
    if (!n.persisted) throw new Error(`Node ${id}: advance before persist`);
    const unsent = (!n.sent.early && rd.messages.length > 0) ||
      (!n.sent.afterSave && rd.messagesAfterSave.length > 0);
    if (unsent) throw new Error(`Node ${id}: advance before its messages were sent`);
    for (const e of rd.committedEntries) out.push(`${id} applied ${entryText(e)}`);
    n.raw.advance(rd);
    n.pending = undefined;
  }

  #deliver(to: Set<NodeId> | undefined, out: string[]): void {
    const now = this.#network;
    this.#network = [];
    for (const m of now) {
      if (to && !to.has(m.to)) {
        this.#network.push(m);
        continue;
      }
      out.push(`delivered ${describeMessage(m)}`);
      this.#node(m.to).raw.step(m);
    }
  }

  #process(id: NodeId, out: string[]): void {
    this.#ready(id, out);
    if (!this.#node(id).pending) return;
    this.#sendEarly(id, []);
    this.#persist(id);
    this.#sendAfterSave(id, []);
    this.#advance(id, out);
  }

  #stabilize(out: string[]): void {
    for (let round = 0; round < 100; round++) {
      let busy = false;
      for (const [id, n] of [...this.#nodes].sort((a, b) => a[0] - b[0])) {
        while (n.raw.hasReady()) {
          busy = true;
          this.#process(id, out);
        }
      }
      if (this.#network.length > 0) {
        busy = true;
        this.#deliver(undefined, out);
      }
      if (!busy) return;
    }
    throw new Error("Trace cluster did not stabilize in 100 rounds");
  }

  #status(id: NodeId, out: string[]): void {
    const s = this.#node(id).raw.status();
    out.push(
      `${id}: ${s.role} term=${s.term} lead=${s.leader} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`,
    );
    for (const [peer, p] of Object.entries(s.progress ?? {})) {
      const flag = p.logWentBackwards ? " logWentBackwards" : "";
      out.push(`  ${peer}: match=${p.match} next=${p.next} ${p.state}${flag}`);
    }
  }
}
