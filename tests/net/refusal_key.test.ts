import assert from "node:assert/strict";
import { refusalKey } from "../../net/rpc.ts";

Deno.test("refusalKey: one key per kind of refusal, whatever ids or quoted input it carries", () => {
  const wiped3 = refusalKey("Node 3 has an empty data directory and was not started with --join");
  const wiped7 = refusalKey("Node 7 has an empty data directory and was not started with --join");
  const mismatch = refusalKey(
    "Cluster id mismatch: this node belongs to cluster ab12, node 2 cd34",
  );
  assert.equal(wiped3, wiped7);
  assert.notEqual(wiped3, mismatch);
  // What an attacker sends cannot mint a key per connection beyond the first two words.
  const a = refusalKey(`Unknown role: ${"x".repeat(5000)}`);
  assert.ok(a.length <= "handshake:".length + 32);
  assert.notEqual(refusalKey("Client token is not valid"), refusalKey("Client presented no token"));
});
