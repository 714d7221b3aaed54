// Entry of a data-plane worker thread (src/data-plane/worker-loop.ts does the work). This file
// sits beside main.ts because `bun build --compile` only finds workers next to the main entry.
import type { ControlRequest, WorkerStart } from "./data-plane/protocol.ts";
import { WorkerLoop } from "./data-plane/worker-loop.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<WorkerStart>) => {
  const loop = new WorkerLoop(event.data, (message) => self.postMessage(message));
  self.onmessage = (next: MessageEvent<ControlRequest>) => loop.receive(next.data);
  self.postMessage({ type: "ready", workerIndex: event.data.workerIndex });
  // A failure of the loop itself (not of one device's data path) ends the worker: its stores
  // are closed, then the error is rethrown outside the promise so the control plane sees the
  // worker's error event and attaches the devices again.
  loop.run().catch(async (error: unknown) => {
    await loop.abandon();
    setTimeout(() => {
      throw error;
    });
  });
};
