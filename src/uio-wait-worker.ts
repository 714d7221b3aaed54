// The one blocking wait of a device, in its own thread: epoll over the UIO descriptor and an
// eventfd that asks the worker to stop. Each UIO interrupt bumps a shared counter and wakes the
// main thread (Atomics.notify, seen by Atomics.waitAsync). This file sits beside main.ts because
// `bun build --compile` only finds workers next to the main entry.
import * as libc from "./libc/libc.ts";
import { WAIT_COUNTER_INDEX, WAIT_STATE_GONE, WAIT_STATE_INDEX, type WaitWorkerStart } from "./uio/wait-protocol.ts";

declare const self: Worker;

const UIO_TOKEN = 1;
const STOP_TOKEN = 2;
const EPOLL_EVENT_BYTES = 12;

self.onmessage = (event: MessageEvent<WaitWorkerStart>) => {
  const { uioFd, stopFd, signal, readBytes } = event.data;
  const words = new Int32Array(signal);
  const epollFd = libc.epollCreate();
  libc.epollAdd(epollFd, uioFd, UIO_TOKEN);
  libc.epollAdd(epollFd, stopFd, STOP_TOKEN);
  const events = new Uint8Array(EPOLL_EVENT_BYTES * 2);
  const count = new Uint8Array(8);
  const view = new DataView(events.buffer);
  let running = true;
  while (running) {
    const ready = libc.epollWait(epollFd, events, -1);
    for (let index = 0; index < ready; index += 1) {
      const token = view.getUint32(index * EPOLL_EVENT_BYTES + 4, true);
      if (token === STOP_TOKEN) {
        running = false;
        continue;
      }
      try {
        libc.read(uioFd, count, readBytes);
      } catch {
        // The device was removed (uio_unregister_device): reads fail from now on.
        Atomics.store(words, WAIT_STATE_INDEX, WAIT_STATE_GONE);
        running = false;
      }
      Atomics.add(words, WAIT_COUNTER_INDEX, 1);
      Atomics.notify(words, WAIT_COUNTER_INDEX);
    }
  }
  libc.close(epollFd);
  self.postMessage("stopped");
};
