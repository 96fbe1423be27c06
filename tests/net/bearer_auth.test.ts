/** Bearer-token check in front of HTTP handlers (net/bearer_auth.ts). */
import assert from "node:assert/strict";
import { requireBearer } from "../../net/bearer_auth.ts";
import { tokenDigest } from "../../net/handshake.ts";

const TOKEN = "t0k3n-abcdefghijklmnopqrstuvwxyz";
const OTHER = "other-abcdefghijklmnopqrstuvwxyz";
const info = {} as Deno.ServeHandlerInfo;

function guarded() {
  let refused = 0;
  let served = 0;
  const handler = requireBearer(() => (served++, new Response("ok")), {
    tokenDigests: [tokenDigest(TOKEN), tokenDigest(OTHER)],
    openPaths: new Set(["/healthz"]),
    onRefused: () => refused++,
  });
  const call = async (authorization?: string, path = "/v1/kv/x") => {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    const response = await handler(new Request(`http://h${path}`, { headers }), info);
    await response.body?.cancel();
    return response.status;
  };
  return { call, refused: () => refused, served: () => served };
}

Deno.test("requireBearer: valid tokens pass, again and again; anything else is 401 and counted", async () => {
  const g = guarded();
  // Twice each: the second request of a header takes the remembered path.
  for (let i = 0; i < 2; i++) {
    assert.equal(await g.call(`Bearer ${TOKEN}`), 200);
    assert.equal(await g.call(`bearer  ${OTHER} `), 200);
  }
  const refusals = [
    undefined,
    "",
    `Basic ${TOKEN}`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}X`,
    `Bearer ${TOKEN} ${TOKEN}`,
    `Bearer ${TOKEN}`.slice(0, -1),
  ];
  for (const header of refusals) {
    assert.equal(await g.call(header), 401, `admitted: ${header}`);
  }
  assert.equal(g.refused(), refusals.length);
  assert.equal(g.served(), 4);
  // Open paths need no token.
  assert.equal(await g.call(undefined, "/healthz"), 200);
});

Deno.test("requireBearer: more distinct valid headers than it remembers are still all admitted", async () => {
  const g = guarded();
  const variants = Array.from({ length: 40 }, (_, i) => `Bearer ${TOKEN}${" ".repeat(i)}`);
  for (let round = 0; round < 2; round++) {
    for (const header of variants) assert.equal(await g.call(header), 200);
  }
  assert.equal(await g.call(`Bearer ${TOKEN}!`), 401);
  assert.equal(g.refused(), 1);
});
