/**
 * The MapReduce application contract and its loader. An app is a module a worker imports in its
 * own process; it exports `map` and `reduce`, and optionally `combine`.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** One intermediate pair emitted by `map`. */
export interface KeyValue {
  key: string;
  value: string;
}

/** What an app module exports: `map` and `reduce`, optionally `combine` for the map side. */
export interface MapReduceApp {
  map(filename: string, contents: string): KeyValue[] | Promise<KeyValue[]>;
  reduce(key: string, values: string[]): string | Promise<string>;
  combine?(key: string, values: string[]): string;
}

/** The app module could not be imported or does not satisfy the contract. */
export class AppLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppLoadError";
  }
}

/** Resolves an app path (relative to the current directory) or URL to an importable URL. */
export function appUrl(path: string): string {
  if (/^(file|https?|data):/.test(path)) return path;
  return pathToFileURL(isAbsolute(path) ? path : resolve(Deno.cwd(), path)).href;
}

/** Imports an app module and checks its exports; throws AppLoadError with the reason. */
export async function loadApp(path: string): Promise<MapReduceApp> {
  let module: Record<string, unknown>;
  try {
    module = await import(appUrl(path));
  } catch (err) {
    const reason = err instanceof Error ? err.message.split("\n")[0] : String(err);
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
  return {
    map: module.map as MapReduceApp["map"],
    reduce: module.reduce as MapReduceApp["reduce"],
    combine: module.combine as MapReduceApp["combine"],
  };
}
