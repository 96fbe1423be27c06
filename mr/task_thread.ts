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
import { runMapInputs, runReduce } from "./engine.ts";
import { trimHeap } from "./heap_trim.ts";
import {
  handleTaskRequest,
  PROGRESS_MS,
  type TaskReply,
  type TaskRequest,
} from "./task_protocol.ts";

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
  // Tells the worker, at most every PROGRESS_MS, that the app is emitting or reducing: its
  // task timeout then counts from the last progress, not from the task's start.
  let last = 0;
  const progress = () => {
    const now = Date.now();
    if (now - last < PROGRESS_MS) return;
    last = now;
    self.postMessage({ type: "progress", id: request.id } as TaskReply);
  };
  // A map starts on a heap without the previous map's garbage (its input string, its table;
  // a no-op while the heap is small), so maps' memory stays bounded. Not after a task: the
  // full collection takes tens of milliseconds, and after the last map the first reduce of the
  // phase would wait for it, while reduces need little memory.
  if (request.type === "map") trimHeap();
  self.postMessage(await handleTaskRequest(app!, request, runMapInputs, runReduce, progress));
};
