/**
 * The one sleep helper. Only for polling and back-off in the I/O layers, tools and tests: the
 * Raft core never waits on time (it counts ticks).
 */

/** Resolves after `ms` milliseconds (a timer; not cancellable). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
