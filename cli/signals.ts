/**
 * Stop signals for long-running roles. A terminal's Ctrl-C sends SIGINT to the whole process
 * group, and `raftmr cluster` then sends SIGTERM to its nodes as well; systemd may repeat
 * SIGTERM. A process that removed its listener after the first signal would die on the second
 * one in the middle of its shutdown (before its WAL is closed), so the listeners stay installed
 * for the life of the process and every signal after the first is a no-op.
 */

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Resolves with the first SIGINT or SIGTERM received; later ones are ignored until the process
 * exits. `onSignal` hears every signal (the first included), e.g. to log a repeated one.
 */
export function stopSignal(onSignal?: (signal: Deno.Signal, repeated: boolean) => void) {
  return new Promise<Deno.Signal>((resolve) => {
    let seen = false;
    for (const signal of SIGNALS) {
      Deno.addSignalListener(signal, () => {
        onSignal?.(signal, seen);
        if (seen) return;
        seen = true;
        resolve(signal);
      });
    }
  });
}
