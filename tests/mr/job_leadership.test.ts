import assert from "node:assert/strict";
import { JobLeadership } from "../../mr/job_leadership.ts";

Deno.test("job leadership: a new leader schedules once its log's end at election is applied", () => {
  const lead = new JobLeadership();
  assert.equal(lead.term({ isLeader: false, term: 1, applied: 5, lastIndex: 5 }), undefined);
  // Elected in term 2 with entries 6..8 of term 1 not yet known committed, 9 its no-op.
  assert.equal(lead.term({ isLeader: true, term: 2, applied: 5, lastIndex: 9 }), undefined);
  assert.equal(lead.term({ isLeader: true, term: 2, applied: 8, lastIndex: 9 }), undefined);
  assert.equal(lead.term({ isLeader: true, term: 2, applied: 9, lastIndex: 9 }), 2);
  // Once caught up it stays so while its own later entries are still being applied.
  assert.equal(lead.term({ isLeader: true, term: 2, applied: 9, lastIndex: 30 }), 2);
  // Leading again in a later term waits again, for that term's start.
  assert.equal(lead.term({ isLeader: false, term: 3, applied: 30, lastIndex: 31 }), undefined);
  assert.equal(lead.term({ isLeader: true, term: 4, applied: 30, lastIndex: 33 }), undefined);
  assert.equal(lead.term({ isLeader: true, term: 4, applied: 33, lastIndex: 33 }), 4);
  // A term change seen without a non-leader look in between resets too.
  assert.equal(lead.term({ isLeader: true, term: 6, applied: 33, lastIndex: 35 }), undefined);
});
