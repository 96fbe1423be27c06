/**
 * `deno task bench rpc`: round trips per second over one loopback connection with 1 and 64
 * concurrent callers, and MB/s moving 1 MiB payloads; a raw TCP ping-pong on the same loopback
 * is the reference row.
 */
import { RpcClient, RpcServer } from "../net/rpc.ts";
import { printTable } from "./table.ts";

const DURATION_MS = Number(Deno.env.get("BENCH_MS") ?? 3000);

async function runFor(concurrency: number, once: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const deadline = performance.now() + DURATION_MS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await once();
        count++;
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function rawPingPong(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    const conn = await listener.accept();
    conn.setNoDelay(true);
    const buffer = new Uint8Array(64);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      await conn.write(buffer.subarray(0, n));
    }
    conn.close();
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const ping = new Uint8Array(16);
  const rate = await runFor(1, async () => {
    await conn.write(ping);
    await conn.read(ping);
  });
  conn.close();
  await serving;
  listener.close();
  return rate;
}

/** Runs the RPC benchmark and prints its table. */
export async function main(_args: string[]): Promise<void> {
  const server = new RpcServer();
  server.handle("echo", (params) => params);
  const { port } = server.listen("127.0.0.1", 0);
  const client = new RpcClient({ hostname: "127.0.0.1", port });
  await client.call("echo", "warm-up");

  const raw = await rawPingPong();
  const small = { key: "k", value: new Uint8Array(100) };
  const one = await runFor(1, () => client.call("echo", small));
  const many = await runFor(64, () => client.call("echo", small));
  const mib = new Uint8Array(1024 * 1024).fill(1);
  const bulk = await runFor(4, () => client.call("echo", mib));
  client.close();
  await server.close();

  console.log(`RPC over loopback TCP, ${DURATION_MS} ms per row, ${new Date().toISOString()}`);
  printTable(["workload", "figure", "vs raw ping-pong"], [
    ["raw TCP ping-pong, 1 caller", `${fmt(raw)} round trips/s`, "1.00x"],
    ["RPC 100 B, 1 caller", `${fmt(one)} calls/s`, `${(one / raw).toFixed(2)}x`],
    ["RPC 100 B, 64 callers", `${fmt(many)} calls/s`, `${(many / raw).toFixed(2)}x`],
    ["RPC 1 MiB echo, 4 callers", `${fmt((bulk * 2 * 1024 * 1024) / 1e6)} MB/s (both ways)`, ""],
  ]);
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
