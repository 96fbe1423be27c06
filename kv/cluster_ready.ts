/**
 * When a `raftmr cluster` is ready: every node answers /status and a majority agrees on one
 * leader.
 */

/** How long one /status probe may take; a node still starting simply answers a later probe. */
const PROBE_TIMEOUT_MS = 1000;
const POLL_MS = 100;

/**
 * Polls every node's GET /status until all answer and a majority names the same leader in one
 * term; resolves with the leader's id, or undefined once `cancelled()` is true. `headers` go
 * with every probe (the bearer token of a secure cluster).
 */
export async function waitForClusterReady(
  urls: string[],
  cancelled: () => boolean,
  headers: Record<string, string> = {},
): Promise<number | undefined> {
  while (!cancelled()) {
    const statuses = await Promise.all(urls.map((url) => probe(`${url}/status`, headers)));
    if (statuses.every((s) => s !== undefined)) {
      const votes = new Map<string, number>();
      for (const s of statuses) {
        if (s!.leader > 0) {
          votes.set(`${s!.term}/${s!.leader}`, (votes.get(`${s!.term}/${s!.leader}`) ?? 0) + 1);
        }
      }
      for (const [key, count] of votes) {
        if (count > urls.length / 2) return Number(key.split("/")[1]);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return undefined;
}

async function probe(
  url: string,
  headers: Record<string, string>,
): Promise<{ leader: number; term: number } | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await response.json();
    return typeof body?.leader === "number" && typeof body?.term === "number" ? body : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
