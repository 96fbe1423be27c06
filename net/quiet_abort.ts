/**
 * Aborting the signal of one `serveHttpOnConnection` connection without ending the process.
 *
 * Found on Deno 2.9.6 (2026-12-01, a worker's shuffle server shutting down at the end of a job in
 * CI): Deno's own abort listener closes the connection's resource; when that connection has
 * already ended (the client hung up just before), the close throws BadResource inside the abort
 * event, where no try/catch around abort() reaches, and the uncaught error ends the process with
 * exit status 1. An error thrown by an event listener is reported synchronously as an `error`
 * event on globalThis, so a handler that cancels exactly that error (BadResource, while we are
 * inside abort()) and nothing else keeps the process alive and lets every other uncaught error
 * end it as before.
 */

let aborting = 0;
let installed = false;

function cancelStaleClose(event: ErrorEvent): void {
  if (aborting > 0 && event.error instanceof Deno.errors.BadResource) event.preventDefault();
}

/** Aborts `controller`; a BadResource thrown by a listener of its signal is ignored. */
export function abortQuietly(controller: AbortController): void {
  if (!installed) {
    globalThis.addEventListener("error", cancelStaleClose);
    installed = true;
  }
  aborting++;
  try {
    controller.abort();
  } catch {
    // abort() itself does not throw for a listener's error; nothing else to catch here.
  } finally {
    aborting--;
  }
}
