/**
 * Test helpers that read the deploy/ files the way an operator's tools would: the alert rules'
 * expressions (one `expr:` line each) and the Grafana dashboard's queries, reduced to the metric
 * names they select, and a /metrics body reduced to what it declares and what it has samples of.
 */

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
]);

/** The metric names a PromQL expression selects (functions, keywords and labels left out). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // string literals
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // range selectors
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ""); // label lists
  const names = new Set<string>();
  for (const m of bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || KEYWORDS.has(m[1])) continue; // a function call or a keyword
    names.add(m[1]);
  }
  return [...names];
}

/** The alerting rules of a Prometheus rules file, by group: name, alert and expression. */
export function alertRules(yaml: string): { group: string; alert: string; expr: string }[] {
  const rules: { group: string; alert: string; expr: string }[] = [];
  let group = "";
  let alert = "";
  for (const line of yaml.split("\n")) {
    const g = /^\s*- name:\s*(\S+)/.exec(line);
    if (g) group = g[1];
    const a = /^\s*- alert:\s*(\S+)/.exec(line);
    if (a) alert = a[1];
    const e = /^\s*expr:\s*(.*)$/.exec(line);
    if (!e) continue;
    if (/^[|>]/.test(e[1])) throw new Error(`Rule ${alert}: keep expr on one line to be checked`);
    rules.push({ group, alert, expr: e[1].replace(/^(["'])(.*)\1$/, "$2") });
  }
  return rules;
}

/** Every `expr` of every panel target in a Grafana dashboard model. */
export function dashboardExprs(model: unknown): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) {
        if (k === "expr" && typeof v === "string") out.push(v);
        else walk(v);
      }
    }
  };
  walk(model);
  return out;
}

/** What a /metrics body offers: declared families with their type, and names with samples. */
export function exposition(text: string): { types: Map<string, string>; sampled: Set<string> } {
  const types = new Map<string, string>();
  const sampled = new Set<string>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (s && !line.startsWith("#")) sampled.add(s[1]);
  }
  return { types, sampled };
}

/** Whether `name` (a series name, possibly a histogram's `_bucket`/`_sum`/`_count`) is declared. */
export function declares(types: Map<string, string>, name: string): boolean {
  if (types.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && types.get(base) === "histogram";
}
