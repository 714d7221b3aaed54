// Calls `onWake` each time a descriptor is readable, without ever blocking the event loop: a
// wait worker blocks in epoll and wakes this thread through Atomics.notify, and is stopped
// through its eventfd. For descriptors watched outside a data-plane worker (a worker's own epoll
// watches its devices and completion eventfds itself): the simulator's doorbell pipe, the
// file engines' completion eventfd in tools and in-process tests.
import * as libc from "../libc/libc.ts";
import { UIO_WAIT_WORKER_URL } from "../worker-urls.ts";
import { WAIT_COUNTER_INDEX, WAIT_STATE_GONE, WAIT_STATE_INDEX, type WaitWorkerStart } from "./wait-protocol.ts";

export interface WaiterOptions {
  /** The descriptor to wait on: /dev/uioN, or an eventfd in tests. */
  fd: number;
  readBytes: number;
  onWake: () => void;
  /** The device vanished (reads fail) or the worker died: called once, the waiter has stopped. */
  onGone: (reason: string) => void;
}

export class Waiter {
  readonly #impl: ThreadWaiter;

  constructor(options: WaiterOptions) {
    this.#impl = new ThreadWaiter(options);
  }

  /** Stops waiting; waits for the worker to leave its epoll_wait. */
  stop(): Promise<void> {
    return this.#impl.stop();
  }
}

class ThreadWaiter {
  readonly #options: WaiterOptions;
  readonly #worker: Worker;
  readonly #stopFd: number;
  readonly #words: Int32Array;
  readonly #stopped: Promise<void>;
  #running = true;

  constructor(options: WaiterOptions) {
    this.#options = options;
    this.#stopFd = libc.eventfd(0, 0);
    const signal = new SharedArrayBuffer(8);
    this.#words = new Int32Array(signal);
    this.#worker = new Worker(UIO_WAIT_WORKER_URL);
    this.#stopped = new Promise((resolve) => {
      this.#worker.addEventListener("message", () => resolve());
      // A worker that cannot load or throws would otherwise leave the device silently unserved.
      this.#worker.addEventListener("error", (event) => {
        resolve();
        if (!this.#running) return;
        this.#running = false;
        options.onGone(`wait worker failed: ${event.message}`);
      });
    });
    const start: WaitWorkerStart = { uioFd: options.fd, stopFd: this.#stopFd, signal, readBytes: options.readBytes };
    this.#worker.postMessage(start);
    void this.#loop();
  }

  async #loop(): Promise<void> {
    let seen = Atomics.load(this.#words, WAIT_COUNTER_INDEX);
    while (this.#running) {
      const result = Atomics.waitAsync(this.#words, WAIT_COUNTER_INDEX, seen);
      if (result.async) await result.value;
      if (!this.#running) return;
      seen = Atomics.load(this.#words, WAIT_COUNTER_INDEX);
      if (Atomics.load(this.#words, WAIT_STATE_INDEX) === WAIT_STATE_GONE) {
        this.#running = false;
        this.#options.onGone("the device was removed (UIO reads fail)");
        return;
      }
      this.#options.onWake();
    }
  }

  /** Stops the worker and waits for it to leave its epoll_wait. */
  async stop(): Promise<void> {
    if (this.#running) {
      this.#running = false;
      libc.write(this.#stopFd, new BigUint64Array([1n]), 8);
      // Wake our own waitAsync so #loop returns.
      Atomics.add(this.#words, WAIT_COUNTER_INDEX, 1);
      Atomics.notify(this.#words, WAIT_COUNTER_INDEX);
    }
    await this.#stopped;
    this.#worker.terminate();
    libc.close(this.#stopFd);
  }
}
