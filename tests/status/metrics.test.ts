/** The shared metrics registry: exposition format, escaping, histograms, pulled metrics. */
import assert from "node:assert/strict";
import {
  decadeBuckets,
  escapeLabelValue,
  exponentialBuckets,
  Registry,
} from "../../status/metrics.ts";

Deno.test("metrics: counters and gauges render HELP, TYPE and one line per series", () => {
  const r = new Registry();
  const requests = r.counter({ name: "x_requests_total", help: "Requests", labels: ["code"] });
  const depth = r.gauge({ name: "x_depth", help: "Depth" });
  requests.inc({ code: "200" });
  requests.inc({ code: "200" }, 2);
  requests.inc({ code: "404" });
  depth.set(5);
  depth.add(-2);
  assert.equal(
    r.render(),
    [
      "# HELP x_requests_total Requests",
      "# TYPE x_requests_total counter",
      'x_requests_total{code="200"} 3',
      'x_requests_total{code="404"} 1',
      "# HELP x_depth Depth",
      "# TYPE x_depth gauge",
      "x_depth 3",
      "",
    ].join("\n"),
  );
  assert.equal(requests.value({ code: "200" }), 3);
  assert.throws(() => requests.inc({ code: "200" }, -1), RangeError);
});

Deno.test("metrics: a child series counts and observes exactly as the labelled calls do", () => {
  const viaLabels = new Registry();
  const viaChild = new Registry();
  const options = { name: "x_requests_total", help: "Requests", labels: ["method", "code"] };
  const buckets = { name: "x_seconds", help: "Time", labels: ["route"], buckets: [0.1, 1] };
  const c1 = viaLabels.counter(options);
  const h1 = viaLabels.histogram(buckets);
  const c2 = viaChild.counter(options);
  const h2 = viaChild.histogram(buckets);
  const get200 = c2.child({ method: "GET", code: "200" });
  const kv = h2.child({ route: "/v1/kv/*" });
  for (const value of [0.05, 0.1, 0.5, 3]) {
    c1.inc({ method: "GET", code: "200" });
    h1.observe(value, { route: "/v1/kv/*" });
    get200.inc();
    kv.observe(value);
  }
  c1.inc({ method: "GET", code: "200" }, 2);
  get200.inc(2);
  assert.equal(viaChild.render(), viaLabels.render());
  assert.equal(c2.value({ method: "GET", code: "200" }), 6);
  assert.equal(h2.count({ route: "/v1/kv/*" }), 4);
  assert.throws(() => get200.inc(-1), RangeError);
  assert.throws(() => c2.child({ method: "GET" }), TypeError);
});

Deno.test("metrics: label values and help text are escaped as the exposition format says", () => {
  const r = new Registry();
  const c = r.counter({ name: "x_total", help: 'Back\\slash and\nnewline "kept"', labels: ["v"] });
  c.inc({ v: 'a"b\\c\nd' });
  const text = r.render();
  assert.match(text, /^# HELP x_total Back\\\\slash and\\nnewline "kept"$/m);
  assert.match(text, /^x_total\{v="a\\"b\\\\c\\nd"\} 1$/m);
  assert.equal(escapeLabelValue("plain"), "plain");
  // Every sample line is one line: nothing a label carries can start a new one.
  for (const line of text.trimEnd().split("\n")) assert.match(line, /^(# (HELP|TYPE) )?x_total/);
});

Deno.test("metrics: histograms render cumulative buckets, +Inf, sum and count per series", () => {
  const r = new Registry();
  const h = r.histogram({ name: "x_seconds", help: "Time", buckets: [1, 0.1], labels: ["op"] });
  h.observe(0.05, { op: "a" });
  h.observe(0.5, { op: "a" });
  h.observe(7, { op: "a" });
  const text = r.render();
  assert.match(text, /^# TYPE x_seconds histogram$/m);
  assert.match(text, /^x_seconds_bucket\{op="a",le="0.1"\} 1$/m);
  assert.match(text, /^x_seconds_bucket\{op="a",le="1"\} 2$/m);
  assert.match(text, /^x_seconds_bucket\{op="a",le="\+Inf"\} 3$/m);
  assert.match(text, /^x_seconds_sum\{op="a"\} 7.55$/m);
  assert.match(text, /^x_seconds_count\{op="a"\} 3$/m);
  assert.equal(h.count({ op: "a" }), 3);
  assert.equal(h.count({ op: "b" }), 0);
});

Deno.test("metrics: an unlabelled metric is exported as 0 before its first event", () => {
  const r = new Registry();
  r.counter({ name: "x_total", help: "X" });
  r.histogram({ name: "x_seconds", help: "T", buckets: [1] });
  const text = r.render();
  assert.match(text, /^x_total 0$/m);
  assert.match(text, /^x_seconds_bucket\{le="\+Inf"\} 0$/m);
});

Deno.test("metrics: pulled metrics are read at every scrape, labels in declared order", () => {
  const r = new Registry();
  let n = 1;
  r.counterFunc({ name: "x_total", help: "X" }, () => n);
  r.gaugeFunc(
    { name: "x_tasks", help: "Tasks", labels: ["kind", "state"] },
    () => [{ labels: { state: "idle", kind: "map" }, value: n * 2 }],
  );
  assert.match(r.render(), /^x_total 1$/m);
  n = 4;
  const text = r.render();
  assert.match(text, /^x_total 4$/m);
  assert.match(text, /^x_tasks\{kind="map",state="idle"\} 8$/m);
});

Deno.test("metrics: bad names, reserved labels, duplicates and wrong label sets are refused", () => {
  const r = new Registry();
  assert.throws(() => r.counter({ name: "9bad", help: "" }), TypeError);
  assert.throws(() => r.counter({ name: "x-y", help: "" }), TypeError);
  assert.throws(() => r.counter({ name: "x_total", help: "", labels: ["__name"] }), TypeError);
  assert.throws(
    () => r.histogram({ name: "h", help: "", labels: ["le"], buckets: [1] }),
    TypeError,
  );
  const c = r.counter({ name: "x_total", help: "", labels: ["a"] });
  assert.throws(() => r.gauge({ name: "x_total", help: "" }), /already registered/);
  assert.throws(() => c.inc({ b: "1" }), /takes labels \{a\}/);
  assert.throws(() => c.inc({}), TypeError);
});

Deno.test("metrics: special values are spelled +Inf, -Inf and NaN", () => {
  const r = new Registry();
  r.gaugeFunc({ name: "x", help: "X", labels: ["v"] }, () => [
    { labels: { v: "a" }, value: Infinity },
    { labels: { v: "b" }, value: -Infinity },
    { labels: { v: "c" }, value: NaN },
  ]);
  const text = r.render();
  assert.match(text, /^x\{v="a"\} \+Inf$/m);
  assert.match(text, /^x\{v="b"\} -Inf$/m);
  assert.match(text, /^x\{v="c"\} NaN$/m);
});

Deno.test("metrics: bucket helpers give readable bounds without float noise", () => {
  assert.deepEqual(decadeBuckets(0.00005, 0.01), [
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
  ]);
  assert.deepEqual(decadeBuckets(1, 10), [1, 2.5, 5, 10]);
  assert.deepEqual(exponentialBuckets(0.0001, 2, 4), [0.0001, 0.0002, 0.0004, 0.0008]);
  assert.throws(() => decadeBuckets(0, 1), RangeError);
  assert.throws(() => exponentialBuckets(1, 1, 3), RangeError);
});
