/**
 * The MapReduce application contract and its loader. An app is a module a worker imports in its
 * own process; it exports `map` and `reduce`, and optionally `combine`. `map` comes in two forms:
 * classic, `map(filename, contents)` returning an array of pairs, and streaming,
 * `map(filename, contents, emit)` calling `emit(key, value)` per pair and returning nothing. The
 * loader offers every app in both forms, so callers pick the one that suits them.
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { errorMessage } from "../util/errors.ts";

/** One intermediate pair emitted by `map`. */
export interface KeyValue {
  key: string;
  value: string;
}

/** Hands one intermediate pair from a streaming map to the engine. */
export type Emit = (key: string, value: string) => void;

/** A loaded app: its map in both forms, reduce, and optionally combine for the map side. */
export interface MapReduceApp {
  /** The classic form: all the pairs of one input (a streaming map's pairs are collected). */
  map(filename: string, contents: string): KeyValue[] | Promise<KeyValue[]>;
  /** The streaming form: every pair goes to `emit` (a classic map's array is fed to it). */
  mapEmit(filename: string, contents: string, emit: Emit): void | Promise<void>;
  reduce(key: string, values: string[]): string | Promise<string>;
  combine?(key: string, values: string[]): string;
}

type ModuleMap = (filename: string, contents: string, emit: Emit) => unknown;

function checkPair(pair: unknown, index: number): asserts pair is KeyValue {
  const p = pair as { key?: unknown; value?: unknown } | null;
  if (typeof p?.key !== "string" || typeof p.value !== "string") {
    throw new TypeError(
      `map returned an invalid pair at index ${index}: expected { key: string, value: string }`,
    );
  }
}

/** Checks what a module's map returned: an array of pairs (classic) or nothing (streaming). */
function mapResult(result: unknown): KeyValue[] | undefined {
  if (result === undefined) return undefined;
  if (!Array.isArray(result)) {
    throw new TypeError(
      `map returned ${typeof result}, expected an array of { key, value } or nothing ` +
        "(a streaming map calls emit)",
    );
  }
  return result;
}

/** The module's map as the streaming form. */
function streamingMap(map: ModuleMap): MapReduceApp["mapEmit"] {
  const feed = (result: unknown, emit: Emit) => {
    const pairs = mapResult(result);
    if (pairs === undefined) return;
    for (let i = 0; i < pairs.length; i++) {
      const pair: unknown = pairs[i];
      checkPair(pair, i);
      emit(pair.key, pair.value);
    }
  };
  return (filename, contents, emit) => {
    const result = map(filename, contents, emit);
    if (result instanceof Promise) return result.then((value) => feed(value, emit));
    return feed(result, emit);
  };
}

/** The module's map as the classic form. */
function classicMap(map: ModuleMap): MapReduceApp["map"] {
  return async (filename, contents) => {
    const emitted: KeyValue[] = [];
    const emit: Emit = (key, value) => void emitted.push({ key, value });
    const returned = mapResult(await map(filename, contents, emit));
    if (returned === undefined) return emitted;
    returned.forEach(checkPair);
    return emitted.length === 0 ? returned : [...emitted, ...returned];
  };
}

/** The app module could not be imported or does not satisfy the contract. */
export class AppLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppLoadError";
  }
}

/** Where the bundled apps live: mr/apps/ in a checkout, apps/ beside dist/raftmr.js. */
const BUNDLED_APPS = new URL("./apps/", import.meta.url);

/**
 * The app a path names. A bare file name (no directory, e.g. `wc.ts`) that is not a file in the
 * current directory names a bundled app, so an installed `raftmr worker --app wc.ts` works from
 * any directory; a local file of that name wins, and anything with a directory or a URL is taken
 * as given.
 */
export function resolveAppPath(path: string): string {
  if (/^(file|https?|data):/.test(path) || path.includes("/") || path.includes("\\")) return path;
  try {
    if (Deno.statSync(path).isFile) return path;
  } catch {
    // Not here (or not readable): try the bundled apps.
  }
  if (BUNDLED_APPS.protocol !== "file:") return path;
  const bundled = fileURLToPath(new URL(path, BUNDLED_APPS));
  try {
    if (Deno.statSync(bundled).isFile) return bundled;
  } catch {
    // No such bundled app either: report the name as given.
  }
  return path;
}

/** Resolves an app path (see resolveAppPath) or URL to an importable URL. */
export function appUrl(path: string): string {
  path = resolveAppPath(path);
  if (/^(file|https?|data):/.test(path)) return path;
  return pathToFileURL(isAbsolute(path) ? path : resolve(Deno.cwd(), path)).href;
}

/** Imports an app module and checks its exports; throws AppLoadError with the reason. */
export async function loadApp(path: string): Promise<MapReduceApp> {
  let module: Record<string, unknown>;
  try {
    module = await import(appUrl(path));
  } catch (err) {
    const reason = errorMessage(err).split("\n")[0];
    throw new AppLoadError(`Cannot import app module ${path}: ${reason}`);
  }
  const missing = ["map", "reduce"].filter((name) => typeof module[name] !== "function");
  if (missing.length > 0) {
    throw new AppLoadError(
      `App module ${path} does not export ${missing.join(" and ")}: an app exports ` +
        "map(filename, contents) and reduce(key, values)",
    );
  }
  if (module.combine !== undefined && typeof module.combine !== "function") {
    throw new AppLoadError(`App module ${path} exports combine, but it is not a function`);
  }
  const map = module.map as ModuleMap;
  return {
    map: classicMap(map),
    mapEmit: streamingMap(map),
    reduce: module.reduce as MapReduceApp["reduce"],
    combine: module.combine as MapReduceApp["combine"],
  };
}
