/** Runs wrk against a URL with a generated Lua script and parses its throughput and latency. */

/** What one wrk run measured. */
export interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx responses plus socket errors. */
  errors: number;
}

/**
 * Writes a wrk script that cycles through the given requests. Each request is a method, a path,
 * and an optional body; they are embedded so wrk spends no time building them.
 */
export async function writeWrkScript(
  path: string,
  requests: {
    method: string;
    path: string;
    body?: string;
    contentType?: string;
    authorization?: string;
  }[],
): Promise<string> {
  const quote = (s: string) => JSON.stringify(s); // JSON string escapes are valid Lua escapes here
  // wrk.format fills in the Host header from wrk.host, which is only set once the run starts,
  // so requests are formatted on first use rather than when the script loads.
  const lines = [
    "local specs = {",
    ...requests.map((r) => {
      const fields = [
        ...(r.contentType ? [`["Content-Type"]=${quote(r.contentType)}`] : []),
        ...(r.authorization ? [`["Authorization"]=${quote(r.authorization)}`] : []),
      ];
      const headers = `{${fields.join(", ")}}`;
      const body = r.body === undefined ? "nil" : quote(r.body);
      return `  {${quote(r.method)}, ${quote(r.path)}, ${headers}, ${body}},`;
    }),
    "}",
    "local reqs = nil",
    "local n = 0",
    "function request()",
    "  if reqs == nil then",
    "    reqs = {}",
    "    for i, s in ipairs(specs) do reqs[i] = wrk.format(s[1], s[2], s[3], s[4]) end",
    // Each wrk thread has its own Lua state: start threads at different offsets.
    "    n = math.random(#reqs)",
    "  end",
    "  n = n % #reqs + 1",
    "  return reqs[n]",
    "end",
  ];
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** Runs wrk for `durationMs` with `connections` connections and returns its figures. */
export async function runWrk(
  url: string,
  script: string,
  connections: number,
  durationMs: number,
): Promise<WrkResult> {
  const threads = Math.min(connections, 2);
  const output = await new Deno.Command("wrk", {
    args: [
      `-t${threads}`,
      `-c${connections}`,
      `-d${Math.max(1, Math.round(durationMs / 1000))}s`,
      "--timeout",
      "5s",
      "--latency",
      "-s",
      script,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(`wrk failed: ${new TextDecoder().decode(output.stderr)}${text}`);
  }
  return parseWrk(text);
}

/** Parses wrk --latency output. */
export function parseWrk(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(text);
    if (!match) return NaN;
    const value = Number(match[1]);
    return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
  };
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1).reduce((s, v) => s + Number(v), 0) : 0;
  return {
    requestsPerSecond: rps ? Number(rps[1]) : 0,
    p50Ms: percentile("50"),
    p99Ms: percentile("99"),
    errors: (non2xx ? Number(non2xx[1]) : 0) + socketErrors,
  };
}
