/**
 * The shell every status page shares (node, coordinator, worker): one stylesheet, a header naming
 * the role, a live-refresh script, and the few building blocks the pages have in common (the
 * health line, key/value panels, progress bars). Pages are rendered on the server through
 * `hono/html`, which escapes every interpolated string, so no page hand-escapes anything; only
 * this file's constant stylesheet and script go through `raw`.
 */
import { html, raw } from "hono/html";
import { percent } from "./format.ts";

/** A fragment or page rendered by `hono/html` (escaped; nest it in another `html` template). */
export type Html = ReturnType<typeof html>;

/** What the shell needs besides the page's own content. */
export interface PageOptions {
  /** The document title (the browser tab). */
  title: string;
  /** The role shown in the header: "node", "coordinator" or "worker". */
  role: string;
  /** The page heading. */
  heading: string;
  /**
   * Seconds between live updates; omitted for a final state (a finished job), which then stays
   * put instead of polling a process that is about to exit.
   */
  refreshSeconds?: number;
  /** The page's content, rendered inside <main>. */
  body: Html;
}

/** How a value in the health line or a member row reads at a glance. */
export type Tone = "ok" | "warn" | "bad" | "idle";

/** One item of the health line: a label, its value, and how it should read. */
export interface HealthItem {
  label: string;
  value: string | number | Html;
  tone?: Tone;
}

/** One row of a key/value panel: a label and a value already formatted with its unit. */
export interface Stat {
  label: string;
  value: string | number | Html;
  /** Shown after the value in a lighter colour (e.g. "per second", "since start"). */
  note?: string;
}

const STYLESHEET = `
:root{--fg:#1d2330;--muted:#667085;--line:#d9dee7;--bg:#f6f7f9;--ok:#12805c;--warn:#b54708;
--bad:#c4320a;--accent:#2e6ae6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg)}
header{display:flex;gap:1em;align-items:baseline;padding:.8em 1.5em;background:#fff;
border-bottom:1px solid var(--line)}
header .role{font-weight:600;color:var(--accent);text-transform:uppercase;font-size:12px;
letter-spacing:.06em}
header h1{font-size:18px;margin:0}
main{padding:1em 1.5em;max-width:72em}
h2{font-size:15px;margin:1.4em 0 .5em}
a{color:var(--accent)}
.health{list-style:none;display:flex;flex-wrap:wrap;gap:.5em;padding:0;margin:0 0 1em}
.health li{background:#fff;border:1px solid var(--line);border-left:4px solid var(--line);
border-radius:4px;padding:.35em .8em}
.health li span{color:var(--muted);margin-right:.4em}
.health .ok{border-left-color:var(--ok)}.health .warn{border-left-color:var(--warn)}
.health .bad{border-left-color:var(--bad)}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);min-width:24em}
th,td{padding:.3em .8em;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.stats td:first-child{color:var(--muted)}
.note{color:var(--muted);margin-left:.5em}
.state{font-weight:600}
.ok .state,.state.ok{color:var(--ok)}.warn .state,.state.warn{color:var(--warn)}
.bad .state,.state.bad{color:var(--bad)}.idle .state,.state.idle{color:var(--muted)}
tr.bad td{background:#fff1ed}
.progress{margin:.4em 0}
.bar{display:inline-block;width:20em;height:1em;border:1px solid #98a2b3;border-radius:3px;
vertical-align:middle;background:#fff;overflow:hidden}
.bar div{height:100%;background:#32a287}
.error{color:var(--bad);font-weight:600}
#offline{background:#fff1ed;border:1px solid var(--bad);color:var(--bad);padding:.5em 1em;margin:1em 1.5em 0}
footer{color:var(--muted);padding:1em 1.5em;font-size:12px}
`;

// Replaces <header> and <main> with a fresh server rendering of the same URL every `data-refresh` seconds.
// A process that stops answering (a killed node, a coordinator whose job ended) leaves its last
// state on screen under a banner, instead of a browser error page; a page rendered without
// data-refresh (a final state) stops polling.
const LIVE_SCRIPT = `
(() => {
  const every = Number(document.body.dataset.refresh || 0) * 1000;
  if (!every) return;
  const banner = document.getElementById("offline");
  let since = null;
  const tick = async () => {
    try {
      const response = await fetch(location.href, { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.title = fresh.title;
      for (const part of ["header", "main"]) {
        document.querySelector(part).replaceWith(fresh.querySelector(part));
      }
      since = null;
      banner.hidden = true;
      if (!fresh.body.dataset.refresh) return;
    } catch (error) {
      since = since || new Date();
      banner.hidden = false;
      banner.textContent = "Not answering since " + since.toLocaleTimeString() +
        ": what you see is the last state it reported.";
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
})();
`;

/** A complete HTML document in the shared layout around `options.body`. */
export function page(options: PageOptions): Html {
  const refresh = options.refreshSeconds;
  // Without JavaScript the page still refreshes (meta refresh); with it, the script above does,
  // and keeps the last state when the process goes away.
  const meta = refresh === undefined
    ? ""
    : html`<noscript><meta http-equiv="refresh" content="${refresh}"></noscript>`;
  return html`
    <!doctype html>
    <html lang="en">
      <head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
    <title>${options.title}</title>${meta}<style>${raw(STYLESHEET)}</style></head>
      <body data-refresh="${refresh ?? ""}">
        <header><span class="role">${options.role}</span><h1>${options.heading}</h1></header>
        <div id="offline" hidden></div>
        <main>
    ${options.body}
        </main>
        <footer>raftmr · <a href="/status">/status</a> (JSON) · <a href="/metrics">/metrics</a> (Prometheus)</footer>
        <script>${raw(LIVE_SCRIPT)}</script>
      </body>
    </html>
  `;
}

/** The row of at-a-glance facts every page opens with. */
export function healthLine(items: HealthItem[]): Html {
  return html`<ul class="health">${
    items.map((item) =>
      html`<li class="${
        item.tone ?? ""
      }"><span>${item.label}</span> <b class="state">${item.value}</b></li>`
    )
  }</ul>`;
}

/** A two-column table of labelled values (counters and gauges with their units). */
export function statsTable(stats: Stat[]): Html {
  return html`
    <table class="stats">
      <tbody>${stats.map((s) =>
        html`
          <tr>
            <td>${s.label}</td>
            <td class="num">${s.value}</td>
            <td>${s.note ? html`<span class="note">${s.note}</span>` : ""}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

/** A labelled progress bar with "done/total"; block-level, so it never sits inside a <p>. */
export function progressRow(label: string, done: number, total: number): Html {
  return html`
    <div
      class="progress">${label} <div class="bar"><div style="width:${percent(
        done,
        total,
      )}%"></div></div> ${done}/${total}</div>
  `;
}
