/**
 * One metrics registry for every role (peer, coordinator, worker), rendered in the Prometheus
 * text exposition format 0.0.4. Metrics are either pushed (a Counter, Gauge or Histogram the code
 * updates as things happen) or pulled (a function read at scrape time, as client_golang's
 * CounterFunc/GaugeFunc: cheaper when the number already lives elsewhere, e.g. the Raft node's
 * counters). Names and label names are checked when a metric is registered, label values are
 * escaped when rendered, so a task name or a worker id with a quote cannot break the output.
 */

/** The Content-Type of the text exposition format, as Prometheus expects it. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label values of one series, by label name. */
export type Labels = Readonly<Record<string, string>>;

/** One pulled sample: its labels (may be empty) and value. */
export interface Sample {
  labels: Labels;
  value: number;
}

/** What a pulled metric's function returns: one unlabelled value or labelled samples. */
export type Collected = number | Iterable<Sample>;

/** What every metric is registered with. */
export interface MetricOptions {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`, durations in `_seconds`. */
  name: string;
  /** One line for humans; rendered after `# HELP`. */
  help: string;
  /** Label names every series of this metric carries, in rendering order. */
  labels?: readonly string[];
}

/** A histogram's options: its bucket upper bounds (sorted here; +Inf is implicit). */
export interface HistogramOptions extends MetricOptions {
  buckets: readonly number[];
}

type MetricType = "counter" | "gauge" | "histogram";

interface Family {
  options: MetricOptions;
  type: MetricType;
  render(out: string[]): void;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The metrics of one process; render() gives the body of GET /metrics. */
export class Registry {
  readonly #families = new Map<string, Family>();

  /** Registers a counter the caller increments; throws TypeError on a bad or taken name. */
  counter(options: MetricOptions): Counter {
    const metric = new Counter(options);
    this.#add(options, "counter", (out) => metric.render(out));
    return metric;
  }

  /** Registers a gauge the caller sets; throws TypeError on a bad or taken name. */
  gauge(options: MetricOptions): Gauge {
    const metric = new Gauge(options);
    this.#add(options, "gauge", (out) => metric.render(out));
    return metric;
  }

  /** Registers a histogram the caller feeds with observe(); throws TypeError on a bad name. */
  histogram(options: HistogramOptions): Histogram {
    const metric = new Histogram(options);
    this.#add(options, "histogram", (out) => metric.render(out));
    return metric;
  }

  /** Registers a counter whose value(s) `collect` returns at each scrape. */
  counterFunc(options: MetricOptions, collect: () => Collected): void {
    this.#add(options, "counter", (out) => renderCollected(options, collect(), out));
  }

  /** Registers a gauge whose value(s) `collect` returns at each scrape. */
  gaugeFunc(options: MetricOptions, collect: () => Collected): void {
    this.#add(options, "gauge", (out) => renderCollected(options, collect(), out));
  }

  /** Every metric in registration order, in the Prometheus text format (ends with "\n"). */
  render(): string {
    const out: string[] = [];
    for (const family of this.#families.values()) {
      const { name, help } = family.options;
      out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${family.type}`);
      family.render(out);
    }
    return out.length === 0 ? "" : out.join("\n") + "\n";
  }

  #add(options: MetricOptions, type: MetricType, render: (out: string[]) => void): void {
    checkNames(options);
    if (this.#families.has(options.name)) {
      throw new TypeError(`Metric already registered: ${options.name}`);
    }
    this.#families.set(options.name, { options, type, render });
  }
}

/** A value that only goes up (restarts at 0 with the process). */
export class Counter {
  readonly #series: Series<number>;

  /** Use Registry.counter(). */
  constructor(options: MetricOptions) {
    this.#series = new Series(options, () => 0);
  }

  /** Adds `by` (default 1, never negative) to the series with `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`Counter increment must be non-negative: ${by}`);
    this.#series.update(labels, (v) => v + by);
  }

  /** The current value of the series with `labels` (0 when never touched). */
  value(labels: Labels = {}): number {
    return this.#series.get(labels) ?? 0;
  }

  /**
   * The series with `labels`, resolved once (and rendered from then on, at 0 until counted):
   * for a hot path, where building the series key on every inc() costs more than the count.
   */
  child(labels: Labels): CounterChild {
    const entry = this.#series.entry(labels);
    return {
      inc(by = 1) {
        if (!(by >= 0)) throw new RangeError(`Counter increment must be non-negative: ${by}`);
        entry.value += by;
      },
    };
  }

  /** Appends this counter's sample lines to `out`. */
  render(out: string[]): void {
    this.#series.render((name, labels, value) => out.push(sampleLine(name, labels, value)));
  }
}

/** One series of a Counter, bound to its label values (Counter.child). */
export interface CounterChild {
  /** Adds `by` (default 1, never negative). */
  inc(by?: number): void;
}

/** One series of a Histogram, bound to its label values (Histogram.child). */
export interface HistogramChild {
  /** Records one observation. */
  observe(value: number): void;
}

/** A value that goes up and down. */
export class Gauge {
  readonly #series: Series<number>;

  /** Use Registry.gauge(). */
  constructor(options: MetricOptions) {
    this.#series = new Series(options, () => 0);
  }

  /** Sets the series with `labels` to `value`. */
  set(value: number, labels: Labels = {}): void {
    this.#series.update(labels, () => value);
  }

  /** Adds `by` (may be negative) to the series with `labels`. */
  add(by: number, labels: Labels = {}): void {
    this.#series.update(labels, (v) => v + by);
  }

  /** The current value of the series with `labels` (0 when never set). */
  value(labels: Labels = {}): number {
    return this.#series.get(labels) ?? 0;
  }

  /** Appends this gauge's sample lines to `out`. */
  render(out: string[]): void {
    this.#series.render((name, labels, value) => out.push(sampleLine(name, labels, value)));
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into fixed buckets (cumulative when rendered, as Prometheus wants). */
export class Histogram {
  readonly #bounds: number[];
  readonly #series: Series<HistogramState>;

  /** Use Registry.histogram(). */
  constructor(options: HistogramOptions) {
    if (options.buckets.length === 0) {
      throw new TypeError(`Histogram has no buckets: ${options.name}`);
    }
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    this.#series = new Series(options, () => ({
      counts: this.#bounds.map(() => 0),
      sum: 0,
      count: 0,
    }));
  }

  /** Records one observation (seconds, for a duration) in the series with `labels`. */
  observe(value: number, labels: Labels = {}): void {
    this.#series.update(labels, (s) => {
      this.#record(s, value);
      return s;
    });
  }

  /** The series with `labels`, resolved once (as Counter.child; rendered from then on). */
  child(labels: Labels): HistogramChild {
    const state = this.#series.entry(labels).value;
    return { observe: (value) => this.#record(state, value) };
  }

  #record(s: HistogramState, value: number): void {
    s.sum += value;
    s.count++;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        s.counts[i]++;
        return;
      }
    }
  }

  /** Observations so far in the series with `labels`. */
  count(labels: Labels = {}): number {
    return this.#series.get(labels)?.count ?? 0;
  }

  /** Sum of the observations so far in the series with `labels`. */
  sum(labels: Labels = {}): number {
    return this.#series.get(labels)?.sum ?? 0;
  }

  /** Appends this histogram's `_bucket`, `_sum` and `_count` lines to `out`. */
  render(out: string[]): void {
    this.#series.render((name, labels, s) => {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i];
        const le = { ...labels, le: formatValue(this.#bounds[i]) };
        out.push(sampleLine(`${name}_bucket`, le, cumulative));
      }
      out.push(sampleLine(`${name}_bucket`, { ...labels, le: "+Inf" }, s.count));
      out.push(sampleLine(`${name}_sum`, labels, s.sum));
      out.push(sampleLine(`${name}_count`, labels, s.count));
    });
  }
}

/** Series of one metric keyed by their label values; an unlabelled metric has one series. */
class Series<V> {
  readonly #options: MetricOptions;
  readonly #labelNames: readonly string[];
  readonly #fresh: () => V;
  readonly #values = new Map<string, { labels: Labels; value: V }>();

  constructor(options: MetricOptions, fresh: () => V) {
    checkNames(options);
    this.#options = options;
    this.#labelNames = options.labels ?? [];
    this.#fresh = fresh;
    // An unlabelled metric is rendered from the start (0), as client libraries do, so a rule
    // or a dashboard never sees it appear only after the first event.
    if (this.#labelNames.length === 0) this.#values.set("", { labels: {}, value: fresh() });
  }

  get(labels: Labels): V | undefined {
    return this.#values.get(this.#key(labels))?.value;
  }

  /** The series with `labels`, created (at its fresh value) if absent. */
  entry(labels: Labels): { labels: Labels; value: V } {
    const key = this.#key(labels);
    let entry = this.#values.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, value: this.#fresh() };
      this.#values.set(key, entry);
    }
    return entry;
  }

  update(labels: Labels, f: (value: V) => V): void {
    const key = this.#key(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value = f(entry.value);
    else this.#values.set(key, { labels: { ...labels }, value: f(this.#fresh()) });
  }

  render(line: (name: string, labels: Labels, value: V) => void): void {
    for (const { labels, value } of this.#values.values()) line(this.#options.name, labels, value);
  }

  #key(labels: Labels): string {
    const names = this.#labelNames;
    const given = Object.keys(labels);
    if (given.length !== names.length || names.some((n) => !(n in labels))) {
      throw new TypeError(
        `Metric ${this.#options.name} takes labels {${names.join(",")}}: got {${given.join(",")}}`,
      );
    }
    // \u0000 cannot occur in a name and keeps "a,b"+"c" apart from "a"+"b,c".
    return names.map((n) => labels[n]).join("\u0000");
  }
}

function checkNames(options: MetricOptions): void {
  if (!NAME.test(options.name)) throw new TypeError(`Invalid metric name: ${options.name}`);
  for (const label of options.labels ?? []) {
    if (!LABEL.test(label) || label.startsWith("__") || label === "le") {
      throw new TypeError(`Invalid label name for ${options.name}: ${label}`);
    }
  }
}

function renderCollected(options: MetricOptions, collected: Collected, out: string[]): void {
  if (typeof collected === "number") {
    out.push(sampleLine(options.name, {}, collected));
    return;
  }
  const names = options.labels ?? [];
  for (const { labels, value } of collected) {
    const ordered: Record<string, string> = {};
    for (const n of names) ordered[n] = labels[n] ?? "";
    out.push(sampleLine(options.name, ordered, value));
  }
}

/** One `name{labels} value` line. */
function sampleLine(name: string, labels: Labels, value: number): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return `${name} ${formatValue(value)}`;
  const text = entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",");
  return `${name}{${text}} ${formatValue(value)}`;
}

/**
 * Escapes a label value as the exposition format requires: backslash, double quote and line
 * feed become `\\`, `\"` and `\n`.
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (ch) => (ch === "\n" ? "\\n" : `\\${ch}`));
}

/** HELP text escapes backslash and line feed only (the format's rule for docstrings). */
function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (ch) => (ch === "\n" ? "\\n" : "\\\\"));
}

/** A sample value as Prometheus spells it: `+Inf`, `-Inf`, `NaN`, or a JavaScript number. */
function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

/**
 * Bucket bounds 1, 2.5 and 5 times each power of ten from `min` to `max` inclusive (the
 * spacing Prometheus' default buckets use): even resolution on a log scale, readable bounds.
 */
export function decadeBuckets(min: number, max: number): number[] {
  if (!(min > 0 && max >= min)) throw new RangeError(`Invalid bucket range: ${min} to ${max}`);
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2.5, 5]) {
      // toPrecision drops the float noise of m * 10^e (2.5e-4 must render as 0.00025).
      const bound = Number((m * 10 ** e).toPrecision(2));
      if (bound >= min && bound <= max) out.push(bound);
    }
  }
  return out;
}

/** `count` bucket bounds starting at `start`, each `factor` times the previous one. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  if (!(start > 0 && factor > 1 && count >= 1)) {
    throw new RangeError(`Invalid exponential buckets: ${start}, ${factor}, ${count}`);
  }
  return Array.from({ length: count }, (_, i) => Number((start * factor ** i).toPrecision(6)));
}

/** A 200 response carrying rendered metrics (`text`) with the exposition format's content type. */
export function metricsResponse(text: string): Response {
  return new Response(text, { status: 200, headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
}
