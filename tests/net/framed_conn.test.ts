import assert from "node:assert/strict";
import { FramedConn } from "../../net/framed_conn.ts";

Deno.test("a peer that stops reading gets its connection closed instead of an unbounded queue", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept(); // accepted, then never read from
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  let closedWith: Error | undefined;
  const framed = new FramedConn(conn, {
    maxQueuedBytes: 1024 * 1024,
    onFrame: () => {},
    onClose: ({ error }) => (closedWith = error),
  });
  const payload = new Uint8Array(100 * 1024);
  let sent = 0;
  // Kernel buffers absorb the first few megabytes; after that the queue must hit its bound.
  while (framed.send(payload) && sent < 5000) {
    sent++;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.ok(framed.closed, `still open after ${sent} frames`);
  assert.match(closedWith?.message ?? "", /is not reading/);
  (await accepted).close();
  listener.close();
});
