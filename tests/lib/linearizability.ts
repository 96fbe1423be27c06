/**
 * Linearizability checker for KV histories, in the style of Wing & Gong with Lowe's memoisation
 * (the algorithm behind Porcupine): depth-first search for an order of the operations that
 * respects real time and the sequential KV model, skipping any (set of linearized operations,
 * model state) pair already explored. The KV model is P-compositional (Herlihy & Wing: a history
 * is linearizable iff each key's sub-history is), so each key is checked on its own, which keeps
 * the search small.
 *
 * Operations whose outcome is unknown (`return: undefined`, e.g. a client timeout) may take effect
 * at any time after their call, or never: they are given an infinite return time and their output
 * is not checked; the search succeeds once every completed operation is placed, since the
 * remaining unknown ones can always be placed last. An unknown get has no effect and is dropped.
 */

/** The KV operations the model knows. */
export type KvHistoryOpKind = "get" | "put" | "append" | "del" | "cas";

/** What a completed operation returned; fields left undefined are not checked. */
export interface KvHistoryOutput {
  /** get: the value read, null when absent. */
  value?: string | null;
  /** del: whether the key existed. */
  existed?: boolean;
  /** cas: whether the swap happened. */
  ok?: boolean;
  /** cas mismatch: the value found, null when absent. */
  current?: string | null;
}

/** One client operation as recorded by a test: inputs, call/return times, output. */
export interface KvHistoryOp {
  clientId: string | number;
  op: KvHistoryOpKind;
  key: string;
  /** put/cas: new value; append: suffix. */
  value?: string;
  /** cas: expected value, null = must be absent. */
  expect?: string | null;
  /** Time the client issued the call (any monotonic clock). */
  call: number;
  /** Time the reply arrived, or undefined when the outcome is unknown. */
  return: number | undefined;
  /** The reply; ignored when `return` is undefined. */
  output?: KvHistoryOutput;
}

/** Outcome of a check: ok, or the first key without a valid linearization and why. */
export type LinearizabilityResult =
  | { ok: true }
  | { ok: false; key: string; explanation: string; exhausted?: boolean };

/** Options of checkLinearizability. */
export interface CheckOptions {
  /** Give up on a key after this many search steps (reported as a failure with exhausted). */
  maxStepsPerKey?: number;
}

type State = string | null;

interface Node {
  op: number;
  isCall: boolean;
  /** For a call: its return node. */
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

function describe(o: KvHistoryOp): string {
  const input = o.op === "cas"
    ? `(${JSON.stringify(o.expect)} -> ${JSON.stringify(o.value)})`
    : o.value !== undefined
    ? `(${JSON.stringify(o.value)})`
    : "";
  const output = o.return === undefined ? "unknown outcome" : JSON.stringify(o.output ?? {});
  return `client ${o.clientId} ${o.op}${input} [${o.call}, ${o.return ?? "∞"}] -> ${output}`;
}

/** Applies `o` to `state`; returns the new state, or undefined when the output is impossible. */
function step(state: State, o: KvHistoryOp, known: boolean): State | undefined {
  const out = known ? o.output : undefined;
  switch (o.op) {
    case "get":
      return out?.value !== undefined && out.value !== state ? undefined : state;
    case "put":
      return o.value ?? "";
    case "append":
      return (state ?? "") + (o.value ?? "");
    case "del":
      return out?.existed !== undefined && out.existed !== (state !== null) ? undefined : null;
    case "cas": {
      const matches = state === (o.expect ?? null);
      if (out?.ok !== undefined && out.ok !== matches) return undefined;
      if (!matches && out?.current !== undefined && out.current !== state) return undefined;
      return matches ? o.value ?? "" : state;
    }
  }
}

function checkKey(key: string, ops: KvHistoryOp[], maxSteps: number): LinearizabilityResult {
  const n = ops.length;
  const known = ops.map((o) => o.return !== undefined);
  const totalKnown = known.filter(Boolean).length;
  // Build the event list: calls and returns by time; at equal times calls first, which treats
  // touching operations as concurrent (the permissive reading of a shared clock tick).
  const events: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach((o, i) => {
    events.push({ time: o.call, isCall: true, op: i });
    events.push({ time: o.return ?? Infinity, isCall: false, op: i });
  });
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Node = { op: -1, isCall: false, match: null, prev: null, next: null };
  const calls: Node[] = new Array(n);
  let tail = head;
  for (const e of events) {
    const node: Node = { op: e.op, isCall: e.isCall, match: null, prev: tail, next: null };
    tail.next = node;
    tail = node;
    if (e.isCall) calls[e.op] = node;
    else calls[e.op].match = node;
  }

  const lift = (call: Node) => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node) => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const bits = new Uint16Array(Math.ceil(n / 16));
  const seen = new Set<string>();
  const cacheKey = (state: State) =>
    String.fromCharCode(...bits) + (state === null ? "\u0000" : "\u0001" + state);
  const stack: { call: Node; state: State }[] = [];
  let state: State = null;
  let placedKnown = 0;
  let entry = head.next;
  let steps = 0;
  let best = { depth: -1, state: null as State, stuck: -1 };

  while (placedKnown < totalKnown) {
    if (++steps > maxSteps) {
      return {
        ok: false,
        key,
        exhausted: true,
        explanation: `Search budget of ${maxSteps} steps exhausted for key ${
          JSON.stringify(key)
        } (${n} operations)`,
      };
    }
    if (entry === null) throw new Error("Linearizability search ran off the event list");
    if (entry.isCall) {
      const i = entry.op;
      const next = step(state, ops[i], known[i]);
      if (next !== undefined) {
        bits[i >> 4] |= 1 << (i & 15);
        const k = cacheKey(next);
        if (!seen.has(k)) {
          seen.add(k);
          stack.push({ call: entry, state });
          state = next;
          if (known[i]) placedKnown++;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits[i >> 4] &= ~(1 << (i & 15));
      }
      entry = entry.next;
    } else {
      // The earliest pending return: that operation must have been placed by now. Backtrack.
      if (stack.length > best.depth) best = { depth: stack.length, state, stuck: entry.op };
      const top = stack.pop();
      if (top === undefined) {
        return {
          ok: false,
          key,
          explanation: `No linearization of ${n} operations on key ${JSON.stringify(key)}: ` +
            `at best ${best.depth} could be ordered, reaching state ${
              JSON.stringify(best.state)
            }, and then this one could not be placed: ${describe(ops[best.stuck])}`,
        };
      }
      const i = top.call.op;
      bits[i >> 4] &= ~(1 << (i & 15));
      if (known[i]) placedKnown--;
      state = top.state;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { ok: true };
}

/**
 * Checks that a KV history is linearizable with respect to the sequential model (every key
 * starts absent; get reads, put sets, append concatenates, del removes, cas swaps on equality).
 */
export function checkLinearizability(
  history: readonly KvHistoryOp[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const byKey = new Map<string, KvHistoryOp[]>();
  for (const o of history) {
    if (o.return !== undefined && o.return < o.call) {
      throw new RangeError(`Operation returns before its call: ${describe(o)}`);
    }
    // A read whose outcome is unknown constrains nothing and changes nothing.
    if (o.return === undefined && o.op === "get") continue;
    let list = byKey.get(o.key);
    if (list === undefined) byKey.set(o.key, list = []);
    list.push(o);
  }
  const maxSteps = options.maxStepsPerKey ?? Infinity;
  for (const [key, ops] of byKey) {
    const result = checkKey(key, ops, maxSteps);
    if (!result.ok) return result;
  }
  return { ok: true };
}
