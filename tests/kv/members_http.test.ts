/**
 * The membership HTTP routes against a fake API: each route builds the right request, refusals
 * answer 409 with their reason, malformed bodies and ids 400, no leader 503.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  ConflictError,
  type MembersRequest,
  type MembersView,
  type TransferView,
} from "../../kv/members_api.ts";
import { addMembersRoutes } from "../../kv/members_http.ts";
import { UnavailableError } from "../../kv/service.ts";

const view: MembersView = {
  members: [{ id: 1, peerAddr: "127.0.0.1:7001", role: "voter", leader: true, match: 5 }],
  configIndex: 2,
};

function setup(answer: (r: MembersRequest) => MembersView | TransferView) {
  const seen: MembersRequest[] = [];
  const app = new Hono();
  addMembersRoutes(app, {
    members: (r) => {
      seen.push(r);
      try {
        return Promise.resolve(answer(r));
      } catch (error) {
        return Promise.reject(error);
      }
    },
  });
  const call = async (method: string, path: string, body?: string) => {
    const res = await app.request(path, { method, body });
    return { status: res.status, body: await res.json() };
  };
  return { seen, call };
}

Deno.test("Membership routes build the requests of the contract and answer 200", async () => {
  const { seen, call } = setup((r) => r.op === "transfer" ? { leader: 2, term: 9 } : view);
  assert.deepEqual(await call("GET", "/v1/members"), { status: 200, body: view });
  let r = await call("POST", "/v1/members", '{"id": 4, "peerAddr": "127.0.0.1:7004"}');
  assert.equal(r.status, 200);
  await call("POST", "/v1/members", '{"id": 5, "peerAddr": "h:7005", "learner": false}');
  await call("POST", "/v1/members/4/promote");
  await call("DELETE", "/v1/members/3");
  r = await call("POST", "/v1/leader/transfer", '{"to": 2}');
  assert.deepEqual(r, { status: 200, body: { leader: 2, term: 9 } });
  await call("POST", "/v1/leader/transfer", "{}");
  await call("POST", "/v1/leader/transfer");
  assert.deepEqual(seen, [
    { op: "list" },
    { op: "add", id: 4, peerAddr: "127.0.0.1:7004", learner: true },
    { op: "add", id: 5, peerAddr: "h:7005", learner: false },
    { op: "promote", id: 4 },
    { op: "remove", id: 3 },
    { op: "transfer", to: 2 },
    { op: "transfer" },
    { op: "transfer" },
  ]);
});

Deno.test("Membership routes: malformed input is 400 and never reaches the API", async () => {
  const { seen, call } = setup(() => view);
  for (
    const [method, path, body] of [
      ["POST", "/v1/members", "{not json"],
      ["POST", "/v1/members", "[1]"],
      ["POST", "/v1/members", '{"id": "four", "peerAddr": "h:1"}'],
      ["POST", "/v1/members", '{"id": 4}'],
      ["POST", "/v1/members", '{"id": 4, "peerAddr": "no-port"}'],
      ["POST", "/v1/members", '{"id": 4, "peerAddr": "h:1", "learner": "yes"}'],
      ["POST", "/v1/members/0/promote", undefined],
      ["DELETE", "/v1/members/x", undefined],
      ["POST", "/v1/leader/transfer", '{"to": -1}'],
    ] as const
  ) {
    const r = await call(method, path, body);
    assert.equal(r.status, 400, `${method} ${path} ${body}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error, "string");
  }
  assert.equal(seen.length, 0);
});

Deno.test("Membership routes: refusals are 409 with the reason, no leader is 503", async () => {
  const { call } = setup((r) => {
    if (r.op === "promote") throw new ConflictError("Learner 4 is not caught up");
    throw new UnavailableError("No leader is known");
  });
  const r = await call("POST", "/v1/members/4/promote");
  assert.deepEqual(r, { status: 409, body: { error: "Learner 4 is not caught up" } });
  assert.equal((await call("DELETE", "/v1/members/2")).status, 503);
});
