/**
 * Entry point of a worker's task thread (a Web Worker): imports the app once, then runs the
 * engine for each map or reduce request the worker process posts, reading and writing files
 * only under the paths it is given. App code runs here, never in the worker's main thread, so an
 * app that calls Deno.exit(), throws from a timer or spins the CPU ends or stalls this thread
 * only: the worker process keeps heartbeating and keeps serving the map output it holds (as
 * Hadoop's NodeManager serves shuffle data whatever happens to a task's JVM).
 */
/// <reference lib="deno.worker" />
import { AppLoadError, loadApp, type MapReduceApp } from "./app.ts";
import { runMap, runReduce } from "./engine.ts";
import { handleTaskRequest, type TaskReply, type TaskRequest } from "./task_protocol.ts";

let app: MapReduceApp | undefined;

// Deno.exit() in a worker ends the thread, not the process; say so before going.
globalThis.addEventListener("unload", () => self.postMessage({ type: "exited" } as TaskReply));

self.onmessage = async (event: MessageEvent<TaskRequest>) => {
  const request = event.data;
  if (request.type === "load") {
    try {
      app = await loadApp(request.appPath);
      self.postMessage({ type: "loaded" } as TaskReply);
    } catch (err) {
      const message = err instanceof AppLoadError ? err.message : String(err);
      self.postMessage({ type: "loadError", message } as TaskReply);
    }
    return;
  }
  self.postMessage(await handleTaskRequest(app!, request, runMap, runReduce));
};
