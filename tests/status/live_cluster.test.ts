/**
 * A live 3-node cluster and a live coordinator, looked at the way an operator does: Prometheus
 * (every metric the alert rules and the Grafana dashboard name is exported) and a person in a
 * browser (headless Chromium: the node page names the leader, links every peer, and shows a
 * killed node down, in red).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startOneFileJob } from "../mr/helpers.ts";
import { fetchWithTimeout, ProcessCluster } from "../lib/cluster.ts";
import { authHeaders } from "../lib/credentials.ts";
import { dumpDom, LivePage, requireChromium, visibleText } from "../lib/chromium.ts";
import { withTempDir } from "../lib/run.ts";
import { sleep } from "../../util/sleep.ts";
import { alertRules, dashboardExprs, declares, exposition, metricNames } from "./promql.ts";

const ALERTS = new URL("../../deploy/prometheus/alerts.yml", import.meta.url);
const DASHBOARD = new URL("../../deploy/grafana/raftmr-cluster.json", import.meta.url);
/** Recorded by Prometheus itself for every scrape target, never exported by a process. */
const SCRAPE_SERIES = new Set(["up"]);
const PROMTOOL = "/usr/bin/promtool";

async function metricsOf(base: string): Promise<string> {
  return await (await fetchWithTimeout(`${base}/metrics`, {}, 5_000)).text();
}

/** Polls `check` until it returns a value; fails with the last reason after many tries. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 300; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`Never happened: ${what}${last ? `: ${last}` : ""}`);
}

Deno.test("live cluster: alerts and dashboards find their metrics; the node page in Chromium", async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3 });
  try {
    await t.step("every metric an alert rule or a Grafana panel names is exported", async () => {
      // Peer metrics carry a `to` label, so they appear once the first probes were answered.
      const nodeText = await eventually("peer probes answered", async () => {
        const text = await metricsOf(cluster.url(1));
        return /^raftmr_peer_reachable\{to="2"\} 1$/m.test(text) &&
            /^raftmr_peer_round_trip_time_seconds_count\{to="3"\} [1-9]/m.test(text)
          ? text
          : undefined;
      });
      const node = exposition(nodeText);
      assert.match(nodeText, /^raftmr_server_has_leader 1$/m);
      assert.match(nodeText, /^raftmr_build_info\{version="\d+\.\d+\.\d+",deno="[^"]+"\} 1$/m);
      assert.match(nodeText, /^raftmr_wal_fsync_duration_seconds_bucket\{le="10"\} \d+$/m);
      assert.match(nodeText, /^process_resident_memory_bytes [1-9]\d*$/m);
      assert.match(nodeText, /^process_open_fds [1-9]\d*$/m);
      // The route label is the pattern that matched, never the raw path.
      // With the test cluster's token (the KV API of a secure node needs it).
      const init = { headers: authHeaders() };
      await (await fetchWithTimeout(`${cluster.url(1)}/v1/kv/some/key`, init, 5_000)).body
        ?.cancel();
      const after = await metricsOf(cluster.url(1));
      assert.match(
        after,
        /^raftmr_http_request_duration_seconds_count\{route="\/v1\/kv\/\*",code="404"\} 1$/m,
      );
      assert.doesNotMatch(after, /some\/key/);

      await withTempDir("raftmr-mr-metrics-", async (dir) => {
        const { coordinator } = await startOneFileJob(dir);
        try {
          const http = coordinator.httpAddress!;
          const mr = exposition(await metricsOf(`http://${http.hostname}:${http.port}`));

          const rules = alertRules(await Deno.readTextFile(ALERTS));
          assert.ok(rules.length >= 6, `only ${rules.length} rules read`);
          for (const want of ["Leader", "Fsync", "NodeDown", "ProposalsFailing", "JobFailed"]) {
            assert.ok(rules.some((r) => r.alert.includes(want)), `no alert about ${want}`);
          }
          for (const rule of rules) {
            const from = rule.group === "raftmr-mapreduce" ? mr : node;
            for (const name of metricNames(rule.expr)) {
              if (SCRAPE_SERIES.has(name)) continue;
              assert.ok(
                from.sampled.has(name),
                `alert ${rule.alert} names ${name}, which the live ${rule.group} does not export`,
              );
            }
          }

          const exprs = dashboardExprs(JSON.parse(await Deno.readTextFile(DASHBOARD)));
          assert.ok(exprs.length >= 15, `only ${exprs.length} dashboard queries read`);
          for (const expr of exprs) {
            for (const name of metricNames(expr)) {
              if (SCRAPE_SERIES.has(name)) continue;
              assert.ok(
                declares(node.types, name) || declares(mr.types, name),
                `a dashboard panel queries ${name}, which nothing declares: ${expr}`,
              );
            }
          }
        } finally {
          await coordinator.close();
        }
      });
    });

    await t.step(
      "Chromium shows the leader, links to every peer, and a killed node down",
      async () => {
        await requireChromium();
        const leader = await cluster.waitForLeader();
        const [viewer, victim] = cluster.ids.filter((id) => id !== leader);

        // A follower's page: the leader is named and every member links to its own dashboard.
        const dom = await eventually("every peer's address learned", async () => {
          const dom = await dumpDom(`${cluster.url(viewer)}/`);
          return visibleText(dom).includes("Members up 3 of 3") ? dom : undefined;
        });
        const text = visibleText(dom);
        assert.match(text, new RegExp(`^NODE Node ${viewer} · follower|Node ${viewer} · follower`));
        assert.match(text, new RegExp(`Leader node ${leader} `));
        for (const id of cluster.ids) {
          if (id === viewer) continue;
          assert.ok(
            dom.includes(`href="http://127.0.0.1:${cluster.node(id).httpPort}/"`),
            `no link to node ${id}'s dashboard`,
          );
        }

        // kill -9 one follower: the leader's page shows it down, in a red row, and the count
        // drops; the victim's own page, left open, keeps its last state under a banner.
        const open = await LivePage.open(`${cluster.url(victim)}/`);
        try {
          await open.waitForText(new RegExp(`Leader node ${leader} `));
          await cluster.kill(victim);
          const stale = await open.waitForText(/Not answering since/);
          assert.match(stale, new RegExp(`Node ${victim} · follower`));
          assert.match(stale, new RegExp(`Leader node ${leader} `));
        } finally {
          await open.close();
        }
        const downDom = await eventually(`node ${victim} shown down`, async () => {
          const dom = await dumpDom(`${cluster.url(leader)}/`);
          return new RegExp(`node ${victim} down`).test(visibleText(dom)) ? dom : undefined;
        });
        assert.match(visibleText(downDom), /Members up 2 of 3/);
        assert.match(
          downDom.replace(/\s+/g, " "),
          new RegExp(`<tr class="bad"> ?<td> ?<a href="[^"]+">node ${victim}</a>`),
        );
        assert.match(visibleText(downDom), new RegExp(`Leader node ${leader} \\(this node\\)`));
      },
    );

    // promtool is Debian's `prometheus` package (.ci/run installs it with Chromium).
    await t.step({
      name: "promtool accepts the rules file and lints the node's metrics clean",
      ignore: !(await exists(PROMTOOL)),
      fn: async () => {
        const rules = await run(PROMTOOL, ["check", "rules", fileURLToPath(ALERTS)]);
        assert.equal(rules.code, 0, rules.output);
        assert.match(rules.output, /SUCCESS: \d+ rules found/);
        const lint = await run(
          PROMTOOL,
          ["check", "metrics"],
          await metricsOf(cluster.url(cluster.running[0])),
        );
        assert.equal(lint.code, 0, lint.output);
      },
    });
  } finally {
    await cluster.stop();
  }
});

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Runs a program with `input` on stdin; returns its exit code and all its output. */
async function run(
  program: string,
  args: string[],
  input = "",
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(program, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}
