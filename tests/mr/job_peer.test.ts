import assert from "node:assert/strict";
import type { RpcServer } from "../../net/rpc.ts";
import type { LeaderState } from "../../mr/job_leadership.ts";
import { JobPeer } from "../../mr/job_peer.ts";
import { JOBS_ASK, JOBS_HEARTBEAT } from "../../mr/job_rpc.ts";
import { JobStateMachine } from "../../mr/job_state_machine.ts";
import { jobSpec } from "./job_helpers.ts";

Deno.test(
  "job peer: a new leader sends workers away until the dead leader's commits are applied, " +
    "then hands out only the maps they left",
  async () => {
    const table = new JobStateMachine();
    table.apply({ kind: "submit", time: 0, id: "eeeeeeee", spec: jobSpec(2, 1, 60_000) });
    // Elected in term 2: entry 4 (the old leader's commit of map 0) and 5 (its no-op) are in
    // its log, applied only up to 3.
    const role: LeaderState & { leader: number } = {
      leader: 1,
      term: 2,
      isLeader: true,
      applied: 3,
      lastIndex: 5,
    };
    const handlers = new Map<string, (params: unknown) => unknown>();
    const rpc = { handle: (method: string, h: (p: unknown) => unknown) => handlers.set(method, h) };
    const peer = new JobPeer({
      table,
      rpc: rpc as unknown as RpcServer,
      role: () => role,
      propose: () => Promise.reject(new Error("Not proposing in this test")),
      client: () => undefined,
      peerAddress: (id) => id === 1 ? "127.0.0.1:7001" : undefined,
      requestTimeoutMs: 1000,
      scratchDir: "/nonexistent",
      log: () => {},
    });
    try {
      const call = (method: string, params: unknown) => handlers.get(method)!(params);
      const beat = { workerId: "w1", address: "127.0.0.1:9001" };
      const away = { leader: false, hint: "127.0.0.1:7001" };
      assert.deepEqual(await call(JOBS_HEARTBEAT, beat), away);
      assert.deepEqual(await call(JOBS_ASK, { workerId: "w1" }), away);
      table.apply({
        kind: "commit",
        time: 1,
        job: "eeeeeeee",
        task: "map",
        index: 0,
        attempt: 1,
        worker: "w1",
        address: "127.0.0.1:9001",
        sizes: [1],
        crcs: [2],
      });
      role.applied = 5;
      assert.equal((await call(JOBS_HEARTBEAT, beat) as { leader: boolean }).leader, true);
      const ask = await call(JOBS_ASK, { workerId: "w1" }) as { type: string; task: number };
      assert.deepEqual([ask.type, ask.task], ["map", 1]);
    } finally {
      peer.close();
    }
  },
);
