import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder, FrameError } from "../../net/frame.ts";

const values: unknown[] = [
  { type: "append", term: 3, entries: [{ index: 1, term: 3, data: new Uint8Array([1, 2, 3]) }] },
  "hello",
  [1, 2, 3],
  { big: "x".repeat(70_000) },
  null,
];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

Deno.test("frames split at every byte boundary decode to the original values", () => {
  const stream = concat(values.slice(0, 3).map(encodeFrame));
  for (let cut = 0; cut <= stream.byteLength; cut++) {
    const decoder = new FrameDecoder();
    const got = [...decoder.push(stream.slice(0, cut)), ...decoder.push(stream.slice(cut))];
    assert.deepEqual(got, values.slice(0, 3), `cut at ${cut}`);
    assert.equal(decoder.pendingBytes, 0);
  }
});

Deno.test("frames fed one byte at a time decode correctly", () => {
  const stream = concat(values.map(encodeFrame));
  const decoder = new FrameDecoder();
  const got: unknown[] = [];
  for (let i = 0; i < stream.byteLength; i++) got.push(...decoder.push(stream.slice(i, i + 1)));
  assert.deepEqual(got, values);
});

Deno.test("many frames in one chunk all decode", () => {
  const many = Array.from({ length: 5000 }, (_, i) => ({ i, s: `v${i}` }));
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(concat(many.map(encodeFrame))), many);
});

Deno.test("binary fields stay intact after the decoder buffers more data", () => {
  const a = encodeFrame({ data: new Uint8Array([9, 9, 9, 9]) });
  const b = encodeFrame({ data: new Uint8Array(100_000).fill(7) });
  const decoder = new FrameDecoder();
  const first = decoder.push(concat([a, b.slice(0, 10)]));
  decoder.push(b.slice(10));
  assert.deepEqual((first[0] as { data: Uint8Array }).data, new Uint8Array([9, 9, 9, 9]));
});

Deno.test("a length over the maximum is rejected before buffering the body", () => {
  const decoder = new FrameDecoder(1024);
  assert.throws(
    () => decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3])),
    (err: unknown) => err instanceof FrameError && /4294967295 bytes exceeds/.test(err.message),
  );
});

Deno.test("a body that is not msgpack is a FrameError", () => {
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.push(new Uint8Array([0, 0, 0, 1, 0xc1])), FrameError);
});

Deno.test("the buffer stays small when every chunk ends inside a frame", () => {
  const frame = encodeFrame({ data: "z".repeat(290) });
  const frames = 200_000; // about 60 MB of stream
  const decoder = new FrameDecoder();
  const chunkFrames = 50;
  const chunk = concat(Array.from({ length: chunkFrames }, () => frame));
  let decoded = 0;
  let maxCapacity = 0;
  // Each push carries 50 frames shifted by one byte, so every push ends 1 byte into a frame.
  decoded += decoder.push(chunk.subarray(0, 1)).length;
  for (let sent = 0; sent < frames; sent += chunkFrames) {
    const shifted = concat([chunk.subarray(1), chunk.subarray(0, 1)]);
    decoded += decoder.push(shifted).length;
    maxCapacity = Math.max(maxCapacity, decoder.capacity);
  }
  assert.equal(decoded, frames);
  assert.ok(maxCapacity <= 64 * 1024, `buffer grew to ${maxCapacity} bytes`);
});
