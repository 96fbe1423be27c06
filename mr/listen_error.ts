/**
 * The one line a failure to listen becomes, for the MapReduce commands (`coordinator`, `worker`,
 * `mr run`): "address in use" names the address that is taken, which Deno's error does not say.
 */
import { firstTaken } from "../net/probe.ts";

/** Exit status after SIGINT or SIGTERM stopped a role early (128 + SIGINT, as shells report). */
export const INTERRUPTED = 130;

/**
 * The message for `err` when it is a failure to listen on one of `addresses` (what the process
 * tried to bind), or undefined for any other error.
 */
export function listenError(
  err: unknown,
  addresses: { hostname: string; port: number; what: string }[] = [],
): string | undefined {
  if (err instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on ${firstTaken(addresses) ?? "an address: address in use"}`;
  }
  if (err instanceof Deno.errors.AddrNotAvailable || err instanceof Deno.errors.PermissionDenied) {
    return `Cannot listen: ${err.message}`;
  }
  return undefined;
}
