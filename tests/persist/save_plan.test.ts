/** planSave, the pure half of DiskStorage.save: what is installed, kept, appended and synced. */
import assert from "node:assert/strict";
import { planSave, type SaveState } from "../../persist/save_plan.ts";
import type { Entry, HardState, Snapshot } from "../../raft/types.ts";
import { ents } from "./storage_conformance.ts";

const hs = (term: number, vote: number, commit: number): HardState => ({ term, vote, commit });

/** Storage state with a snapshot at `snapIndex` and entries up to `lastIndex`, all of `term`. */
function state(
  snapIndex: number,
  lastIndex: number,
  options: { term?: number; hardState?: HardState; unwritten?: boolean } = {},
): SaveState {
  return {
    snapIndex,
    lastIndex,
    term: (index) => {
      assert.ok(index >= snapIndex && index <= lastIndex, `term(${index}) out of range`);
      return options.term ?? 1;
    },
    hardState: options.hardState ?? hs(1, 1, 0),
    hardStateUnwritten: options.unwritten ?? false,
  };
}

function snapshot(index: number, term: number): Snapshot {
  return { meta: { index, term, conf: { peers: [1, 2, 3] } }, data: new Uint8Array(0) };
}

const indexes = (entries: readonly Entry[]) => entries.map((e) => e.index);

Deno.test("save plan: new entries are appended and synced with the hard state", () => {
  const plan = planSave(state(0, 3), hs(1, 1, 2), ents(4, 5, 1));
  assert.equal(plan.install, undefined);
  assert.deepEqual(indexes(plan.append), [4, 5]);
  assert.equal(plan.kept, 3);
  assert.equal(plan.sync, true);
  assert.deepEqual(plan.recordHardState, hs(1, 1, 2));
  assert.equal(plan.maxIndex, 5);
  assert.equal(plan.hardStateUnwritten, false);
});

Deno.test("save plan: a commit-only change is not synced, and rides with the next record", () => {
  const first = planSave(state(0, 3), hs(1, 1, 3), []);
  assert.equal(first.sync, false);
  assert.equal(first.hardStateUnwritten, true);
  assert.deepEqual(first.hardState, hs(1, 1, 3));
  // Still unwritten after another save with nothing to write.
  const idle = planSave(state(0, 3, { hardState: hs(1, 1, 3), unwritten: true }), undefined, []);
  assert.equal(idle.sync, false);
  assert.equal(idle.hardStateUnwritten, true);
  // The next record carries it even when the save itself brings no hard state.
  const next = planSave(
    state(0, 3, { hardState: hs(1, 1, 3), unwritten: true }),
    undefined,
    ents(4, 4, 1),
  );
  assert.equal(next.sync, true);
  assert.deepEqual(next.recordHardState, hs(1, 1, 3));
  assert.equal(next.hardStateUnwritten, false);
});

Deno.test("save plan: a new term or vote is synced on its own", () => {
  for (const h of [hs(2, 0, 0), hs(1, 3, 0)]) {
    const plan = planSave(state(0, 3), h, []);
    assert.equal(plan.sync, true, JSON.stringify(h));
    assert.deepEqual(plan.recordHardState, h);
    assert.equal(plan.append.length, 0);
  }
});

Deno.test("save plan: a snapshot keeps the log only when it has the snapshot's last entry", () => {
  const agreeing = planSave(state(0, 10, { term: 2 }), undefined, [], snapshot(6, 2));
  assert.equal(agreeing.install?.meta.index, 6);
  assert.equal(agreeing.base, 6);
  assert.equal(agreeing.kept, 10);
  assert.equal(agreeing.sync, true);
  assert.equal(agreeing.maxIndex, 6);
  const conflicting = planSave(state(0, 10, { term: 1 }), undefined, [], snapshot(6, 2));
  assert.equal(conflicting.kept, 6);
  const beyond = planSave(state(0, 4), undefined, [], snapshot(9, 3));
  assert.equal(beyond.kept, 9);
  // Not newer than the current snapshot: ignored.
  const old = planSave(state(5, 8), undefined, [], snapshot(5, 1));
  assert.equal(old.install, undefined);
  assert.equal(old.sync, false);
});

Deno.test("save plan: entries the snapshot covers are skipped; gaps and disorder are refused", () => {
  const plan = planSave(state(0, 2), undefined, ents(3, 8, 1), snapshot(5, 1));
  assert.deepEqual(indexes(plan.append), [6, 7, 8]);
  assert.equal(plan.maxIndex, 8);
  assert.throws(() => planSave(state(0, 3), undefined, ents(5, 6, 1)), /start at 5.*ends at 3/);
  const disordered = [...ents(4, 4, 1), ...ents(6, 6, 1)];
  assert.throws(() => planSave(state(0, 3), undefined, disordered), /not consecutive: 6 after 4/);
  // A conflict: entries from an existing index replace the log from there.
  assert.deepEqual(indexes(planSave(state(0, 9), undefined, ents(4, 5, 2)).append), [4, 5]);
});
