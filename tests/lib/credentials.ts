/**
 * Test credentials: one cluster CA with node certificates and a token per test process (made
 * once with openssl, shared by every cluster the process starts), plus a second, foreign CA for
 * tests of refusal. Removed when the process exits.
 */
import { type CredentialPaths, generateCredentials } from "../../cli/credentials.ts";

/** Credentials and their PEM contents, for in-process clients and servers. */
export interface TestCredentials {
  paths: CredentialPaths;
  ca: string;
  token: string;
  node(id: number): { cert: string; key: string };
}

const cache = new Map<string, Promise<TestCredentials>>();
/** The default set's token once made: test HTTP helpers send it to every node. */
let defaultToken: string | undefined;

/**
 * Headers that authenticate a test's HTTP call to a secure test cluster (empty before any
 * secure cluster started; an insecure node ignores them).
 */
export function authHeaders(): Record<string, string> {
  return defaultToken === undefined ? {} : { authorization: `Bearer ${defaultToken}` };
}
let root: string | undefined;

/** Node certificates made per set: enough for every cluster size the tests use. */
const NODES = 9;

/** The process's credentials named `name` ("cluster" by default; another name, another CA). */
export function testCredentials(name = "cluster"): Promise<TestCredentials> {
  let found = cache.get(name);
  if (!found) {
    found = make(name).then((made) => {
      if (name === "cluster") defaultToken = made.token;
      return made;
    });
    cache.set(name, found);
  }
  return found;
}

async function make(name: string): Promise<TestCredentials> {
  if (!root) {
    root = Deno.makeTempDirSync({ prefix: "raftmr-creds-" });
    const dir = root;
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Already gone.
      }
    });
  }
  const paths = await generateCredentials(`${root}/${name}`, { nodes: NODES, days: 2 });
  const nodes = await Promise.all(paths.nodes.map(async (n) => ({
    cert: await Deno.readTextFile(n.cert),
    key: await Deno.readTextFile(n.key),
  })));
  return {
    paths,
    ca: await Deno.readTextFile(paths.ca),
    token: (await Deno.readTextFile(paths.token)).trim(),
    node: (id) => nodes[id - 1],
  };
}
