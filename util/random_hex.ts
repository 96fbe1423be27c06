/** Random identifiers and secrets as lowercase hex. */

/** Draws `bytes` random bytes (crypto.getRandomValues) as lowercase hex, two digits a byte. */
export function randomHex(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
}
