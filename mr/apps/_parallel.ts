/**
 * Helper of the timing test apps: counts the worker processes that are inside the same phase
 * right now, using marker files `mr-worker-<phase>-<pid>` in the current directory.
 */

/**
 * Whether a process id is alive (Linux: /proc/<pid>; elsewhere, or in a worker whose
 * permissions do not reach /proc, as `mr run` starts them: assumed alive).
 */
function alive(pid: number): boolean {
  if (Deno.build.os !== "linux") return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (err) {
    return err instanceof Deno.errors.NotCapable;
  }
}

/** Marks this process as in `phase`, counts live marked processes, sleeps 1 s, unmarks. */
export async function nparallel(phase: string): Promise<number> {
  const mine = `mr-worker-${phase}-${Deno.pid}`;
  await Deno.writeTextFile(mine, "x");
  const pattern = new RegExp(`^mr-worker-${phase}-(\\d+)$`);
  let count = 0;
  for await (const entry of Deno.readDir(".")) {
    const match = pattern.exec(entry.name);
    if (match && alive(Number(match[1]))) count++;
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await Deno.remove(mine);
  return count;
}
