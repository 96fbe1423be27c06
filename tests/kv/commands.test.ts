import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { CommandError, decodeCommand, encodeCommand, type KvCommand } from "../../kv/commands.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("commands: every op round-trips through the log encoding", () => {
  const commands: KvCommand[] = [
    { op: "put", key: "a", value: bytes("1"), time: 5 },
    { op: "append", key: "a/b", value: bytes(""), time: 6, clientId: "c1", seq: 0 },
    { op: "del", key: "k", time: 7, clientId: "c2", seq: 9 },
    { op: "cas", key: "k", value: bytes("new"), expect: bytes("old"), time: 8 },
    { op: "cas", key: "k", value: bytes("new"), expect: null, time: 9, clientId: "x", seq: 3 },
  ];
  for (const command of commands) {
    assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  }
});

Deno.test("commands: the encoding is compact", () => {
  const data = encodeCommand({
    op: "put",
    key: "key",
    value: bytes("v"),
    time: 1,
    clientId: "c",
    seq: 1,
  });
  assert.ok(data.length < 20, `encoded size ${data.length}`);
});

Deno.test("commands: malformed data throws CommandError, never anything else", () => {
  const bad: unknown[] = [
    "not an array",
    [1, 1, "k", 1, null, null, null],
    [2, 1, "k", 1, new Uint8Array(1), null, null, null],
    [1, 9, "k", 1, new Uint8Array(1), null, null, null],
    [1, 1, "", 1, new Uint8Array(1), null, null, null],
    [1, 1, "k", "t", new Uint8Array(1), null, null, null],
    [1, 1, "k", 1, "v", null, null, null],
    [1, 3, "k", 1, new Uint8Array(1), null, null, null],
    [1, 1, "k", 1, new Uint8Array(1), new Uint8Array(1), null, null],
    [1, 4, "k", 1, new Uint8Array(1), "x", null, null],
    [1, 1, "k", 1, new Uint8Array(1), null, "c", null],
    [1, 1, "k", 1, new Uint8Array(1), null, "c", -1],
    [1, 1, "k", 1, new Uint8Array(1), null, null, 5],
  ];
  for (const value of bad) {
    assert.throws(() => decodeCommand(encode(value)), CommandError, JSON.stringify(value));
  }
  assert.throws(() => decodeCommand(new Uint8Array([0xc1])), CommandError);
  assert.throws(() => decodeCommand(new Uint8Array(0)), CommandError);
});
