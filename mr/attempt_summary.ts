/**
 * The line `mr run` prints when a job ran more attempts than it has tasks: how many, and why
 * (task timeouts on live workers, backup attempts, maps re-run after their output was lost).
 * Each extra attempt is work done twice, so a slow or loaded host shows up here as CPU time
 * that grows faster than the input.
 */
import type { JobStatus } from "./coordinator.ts";

/** "N extra attempts ..." for a finished job's status, or undefined when every task ran once. */
export function extraAttempts(status: JobStatus): string | undefined {
  const tasks = [...status.tasks.idle, ...status.tasks.running, ...status.tasks.done];
  const extra = tasks.reduce((sum, task) => sum + Math.max(0, task.attempts - 1), 0);
  if (extra === 0) return undefined;
  return `${extra} extra attempts for ${tasks.length} tasks: ${status.timeouts} after the ` +
    `task timeout, ${status.backupAttempts} backups (${status.backupWins} finished first), ` +
    `${status.mapReruns} maps re-run after their output was lost`;
}
