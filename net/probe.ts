/**
 * Quick looks at TCP addresses: whether anything listens at a set of endpoints, for clients that
 * should fail at once when nothing does (`raftmr kv` with no cluster running) rather than retry
 * until their deadline; and which of a set of addresses is taken, so "address in use" can name
 * the address (Deno's AddrInUse error does not).
 */

/** What one endpoint did when dialed. */
export interface ProbeResult {
  endpoint: string;
  /** "open": it accepted; "refused": nothing listens; "other": no answer in time, or an error. */
  outcome: "open" | "refused" | "other";
  /** Why it was not open (the OS's reason, or "no answer within N ms"). */
  reason?: string;
}

/**
 * Dials every endpoint ("host:port") at once and closes what connects; resolves with each one's
 * outcome. Only "connection refused" is conclusive: a host that does not answer within
 * `timeoutMs` may be slow rather than down.
 */
export async function probeEndpoints(
  endpoints: { endpoint: string; hostname: string; port: number }[],
  timeoutMs: number,
): Promise<ProbeResult[]> {
  return await Promise.all(endpoints.map(async ({ endpoint, hostname, port }) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<ProbeResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ endpoint, outcome: "other", reason: `no answer within ${timeoutMs} ms` }),
        timeoutMs,
      );
    });
    const dial = Deno.connect({ hostname, port }).then(
      (conn): ProbeResult => {
        conn.close();
        return { endpoint, outcome: "open" };
      },
      (err): ProbeResult => {
        if (err instanceof Deno.errors.ConnectionRefused) {
          return { endpoint, outcome: "refused", reason: "connection refused" };
        }
        return {
          endpoint,
          outcome: "other",
          reason: err instanceof Error ? err.message : `${err}`,
        };
      },
    );
    try {
      // A dial that loses the race still closes its connection when it opens (above).
      return await Promise.race([dial, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }));
}

/**
 * The first of `addresses` that cannot be bound now, as "HOST:PORT (what): reason", or undefined
 * when all are free. Port 0 (any free port) is never taken. A port can still be taken between
 * this check and a later bind; callers that bind report that failure too.
 */
export function firstTaken(
  addresses: { hostname: string; port: number; what: string }[],
): string | undefined {
  for (const { hostname, port, what } of addresses) {
    if (port === 0) continue;
    try {
      Deno.listen({ hostname, port }).close();
    } catch (err) {
      const reason = err instanceof Deno.errors.AddrInUse
        ? "address in use"
        : err instanceof Error
        ? err.message
        : String(err);
      return `${hostname}:${port} (${what}): ${reason}`;
    }
  }
  return undefined;
}
