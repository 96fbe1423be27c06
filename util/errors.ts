/**
 * Turning a caught value into text or an Error. Anything can be thrown in JavaScript, so a
 * `catch (err)` holds `unknown`; these two helpers are the one way the program reads it.
 */

/** The message of a thrown value: `err.message` for an Error, its string form otherwise. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The thrown value as an Error (itself when it is one, else an Error with its string form). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
