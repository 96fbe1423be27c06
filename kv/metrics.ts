/**
 * Prometheus text exposition for the KV daemon: counters and gauges read from their sources at
 * scrape time, and one latency histogram (fsync) fed as samples arrive.
 */

/** A histogram with fixed upper bounds in seconds, rendered in Prometheus text format. */
export class Histogram {
  readonly #bounds: number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: number[]) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    this.#counts = this.#bounds.map(() => 0);
  }

  /** Records one observation, in seconds. */
  observe(seconds: number): void {
    this.#sum += seconds;
    this.#count++;
    for (let i = 0; i < this.#bounds.length; i++) {
      if (seconds <= this.#bounds[i]) {
        this.#counts[i]++;
        break;
      }
    }
  }

  /** Number of observations so far. */
  get count(): number {
    return this.#count;
  }

  /** Prometheus lines for this histogram under `name`. */
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i];
      lines.push(`${name}_bucket{le="${this.#bounds[i]}"} ${cumulative}`);
    }
    lines.push(`${name}_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`${name}_sum ${this.#sum}`, `${name}_count ${this.#count}`);
    return lines;
  }
}

/** Fsync latency buckets: 50 us to 1 s. */
export const FSYNC_BUCKETS = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  1,
];

/** One scalar metric: its name, kind, help text and current value. */
export interface Scalar {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: number;
}

/** Renders scalars in Prometheus text format. */
export function renderScalars(scalars: Scalar[]): string[] {
  return scalars.flatMap((s) => [
    `# HELP ${s.name} ${s.help}`,
    `# TYPE ${s.name} ${s.type}`,
    `${s.name} ${s.value}`,
  ]);
}
