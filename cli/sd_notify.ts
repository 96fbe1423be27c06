/**
 * sd_notify(3) without a native library: tells systemd (a `Type=notify` unit) that the service is
 * ready or stopping by sending one datagram to the unix socket named by `$NOTIFY_SOCKET`.
 *
 * Deno 2.9 can send a unix datagram only through Deno.listenDatagram({ transport: "unixpacket" })
 * (a SOCK_DGRAM socket despite the name), which needs `--unstable-net`; node:dgram has no unix
 * sockets, and the other routes are worse: `systemd-notify` needs `--allow-run` for a peer that
 * otherwise never starts a process, and FFI (`--allow-ffi`) is all permissions at once. The
 * sending socket is bound to an abstract address (Linux), so nothing is left on disk; that bind
 * needs `--allow-net`, the send needs write access to the socket's path.
 */

/** Whether a notification was sent, and if it should have been but was not, why. */
export type NotifyOutcome = { sent: boolean; problem?: string };

/**
 * Sends `state` (e.g. "READY=1", "STOPPING=1") to `$NOTIFY_SOCKET`; resolves whether it was
 * sent. Without `$NOTIFY_SOCKET` (not under systemd) it does nothing. Never throws: a service
 * that cannot notify still serves, and the returned problem says which flag is missing.
 */
export async function sdNotify(state: string, socket = notifySocket()): Promise<NotifyOutcome> {
  if (!socket) return { sent: false };
  // systemd may hand out an abstract socket as "@name" (sd_notify(3)).
  const path = socket.startsWith("@") ? `\0${socket.slice(1)}` : socket;
  const listen = (Deno as unknown as {
    listenDatagram?: (options: { transport: "unixpacket"; path: string }) => Deno.DatagramConn;
  }).listenDatagram;
  if (typeof listen !== "function") {
    return { sent: false, problem: "Cannot notify systemd: run Deno with --unstable-net" };
  }
  let conn: Deno.DatagramConn | undefined;
  try {
    conn = listen({ transport: "unixpacket", path: `\0raftmr-notify-${Deno.pid}-${++sends}` });
    await conn.send(new TextEncoder().encode(state), { transport: "unixpacket", path });
    return { sent: true };
  } catch (err) {
    const reason = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return { sent: false, problem: `Cannot notify systemd at ${socket}: ${reason}` };
  } finally {
    conn?.close();
  }
}

let sends = 0;

/** `$NOTIFY_SOCKET`, or undefined when unset or unreadable (no --allow-env for it). */
export function notifySocket(): string | undefined {
  try {
    return Deno.env.get("NOTIFY_SOCKET") || undefined;
  } catch {
    return undefined;
  }
}
