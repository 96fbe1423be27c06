/**
 * Loads pages in a real headless Chromium (Debian's `chromium` package, which `.ci/run` installs
 * when missing) and returns what a person would read: `--dump-dom` gives the DOM after the page
 * loaded and its scripts ran; visibleText() reduces it to the text on screen.
 */
import { withTempDir } from "./run.ts";
import { sleep } from "../../util/sleep.ts";

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

// Flags that work in a container as root without a GPU or network access, and keep Chromium
// from phoning home (no component updates, sync or background requests).
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Throws with the install command when Chromium is missing (the test must not pass without it). */
export async function requireChromium(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: apt-get update && apt-get install -y chromium`,
    );
  }
}

/** The serialized DOM of `url` once loaded, as headless Chromium renders it. */
export async function dumpDom(url: string): Promise<string> {
  return await withTempDir("raftmr-chromium-", async (profile) => {
    const { code, stdout, stderr } = await new Deno.Command(CHROMIUM, {
      args: [...FLAGS, `--user-data-dir=${profile}`, "--dump-dom", url],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dom = new TextDecoder().decode(stdout);
    if (code !== 0 || !dom.includes("<html")) {
      throw new Error(
        `Chromium failed on ${url} (exit ${code}): ${
          new TextDecoder().decode(stderr).slice(-2000)
        }`,
      );
    }
    return dom;
  });
}

/** The text a person sees in a serialized DOM: no scripts, styles or hidden elements, one line. */
export function visibleText(dom: string): string {
  return dom
    .replace(/<(script|style|title)\b[\s\S]*?<\/\1>/gi, " ")
    .replace(/<(\w+)\b[^>]*\bhidden\b[^>]*>[\s\S]*?<\/\1>/gi, " ")
    .replace(/<[^>]+>/g, " ")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * A page kept open in headless Chromium and read over the DevTools protocol, for what only a
 * live page shows: its own refreshes, and what stays on screen once the server is gone.
 */
export class LivePage {
  readonly #process: Deno.ChildProcess;
  readonly #socket: WebSocket;
  readonly #profile: string;
  readonly #replies = new Map<number, (reply: CdpReply) => void>();
  #sessionId = "";
  #nextId = 1;

  private constructor(process: Deno.ChildProcess, socket: WebSocket, profile: string) {
    this.#process = process;
    this.#socket = socket;
    this.#profile = profile;
    socket.onmessage = (event) => {
      const reply = JSON.parse(String(event.data)) as CdpReply;
      if (reply.id !== undefined) this.#replies.get(reply.id)?.(reply);
    };
  }

  /** Starts Chromium, opens `url` in a new tab and attaches to it. */
  static async open(url: string): Promise<LivePage> {
    await requireChromium();
    const profile = await Deno.makeTempDir({ prefix: "raftmr-chromium-" });
    const process = new Deno.Command(CHROMIUM, {
      args: [...FLAGS, `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const endpoint = await devToolsEndpoint(process.stderr);
    const socket = new WebSocket(endpoint);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`Cannot connect to Chromium at ${endpoint}`));
    });
    const page = new LivePage(process, socket, profile);
    const { targetId } = await page.#send("Target.createTarget", { url }) as { targetId: string };
    const attached = await page.#send("Target.attachToTarget", { targetId, flatten: true });
    page.#sessionId = (attached as { sessionId: string }).sessionId;
    return page;
  }

  /** The page's visible text now (document.body.innerText: what a person reads). */
  async text(): Promise<string> {
    const result = await this.#send("Runtime.evaluate", {
      expression: "document.readyState === 'complete' ? document.body.innerText : ''",
      returnByValue: true,
    }) as { result: { value?: string } };
    return (result.result.value ?? "").replace(/\s+/g, " ").trim();
  }

  /**
   * Polls the visible text until it matches `pattern` and returns it; throws with what the page
   * shows after many tries (the page refreshes itself, so it is waited for, never timed).
   */
  async waitForText(pattern: RegExp): Promise<string> {
    let text = "";
    for (let i = 0; i < 600; i++) {
      text = await this.text();
      if (pattern.test(text)) return text;
      await sleep(100);
    }
    throw new Error(`The page never showed ${pattern}; it shows: ${text}`);
  }

  /** Closes the tab and Chromium and removes its profile. */
  async close(): Promise<void> {
    this.#socket.close();
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.#process.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }

  #send(method: string, params: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const message: Record<string, unknown> = { id, method, params };
    if (this.#sessionId && !method.startsWith("Target.")) message.sessionId = this.#sessionId;
    return new Promise((resolve, reject) => {
      this.#replies.set(id, (reply) => {
        this.#replies.delete(id);
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result);
      });
      this.#socket.send(JSON.stringify(message));
    });
  }
}

interface CdpReply {
  id?: number;
  result?: unknown;
  error?: { message: string };
}

/** Reads Chromium's stderr until it prints its DevTools websocket address; drains the rest. */
async function devToolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`Chromium exited before listening: ${seen.slice(-2000)}`);
    seen += value;
    const match = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
    if (match) {
      // Keep reading in the background so Chromium never blocks on a full pipe.
      (async () => {
        try {
          while (!(await reader.read()).done) { /* discard */ }
        } catch {
          // Closed with the process.
        }
      })();
      return match[1];
    }
  }
}
