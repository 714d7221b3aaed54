// The fallback engine, for kernels or sandboxes without io_uring (seccomp, kernel.io_uring_disabled,
// kernels before 5.1): a few worker threads doing preadv/pwritev2/fdatasync. Jobs go through
// shared memory (thread-pool-protocol.ts): the owning thread publishes a batch and wakes the
// threads once; each finished job is announced on an eventfd that the owner's epoll (a
// data-plane worker) or a wait thread watches (readable-watch.ts), so the owner never blocks.
import { watchReadable, type ReadableWatch } from "../../src/data-plane/readable-watch.ts";
import * as libc from "../../src/libc/libc.ts";
import { IO_THREAD_WORKER_URL } from "../../src/worker-urls.ts";
import type { AsyncCompletion, AsyncEngine } from "./async-engine.ts";
import {
  CONTROL_SUBMIT_TAIL,
  JOB_FDATASYNC,
  JOB_READV,
  JOB_WRITEV,
  poolBufferBytes,
  poolViews,
  STOP_TOKEN,
  type PoolViews,
  type PoolWorkerStart,
} from "./thread-pool-protocol.ts";

/** Threads in the pool: enough to overlap a few blocking calls, few enough to stay small. */
export const IO_THREADS_DEFAULT = 2;

export class ThreadPoolEngine implements AsyncEngine {
  readonly kind = "threads";
  readonly description: string;
  readonly #pool: PoolViews;
  readonly #workers: Worker[];
  readonly #stopped: Promise<void>[];
  readonly #onComplete: AsyncCompletion;
  #submitTail = 0;
  #published = 0;
  #completionHead = 0;
  #flushScheduled = false;
  #running = true;
  readonly #completionFd: number;
  readonly #watch: ReadableWatch;

  /** `capacity`: tokens in flight at most (a power of two); `why`: what ruled io_uring out. */
  constructor(capacity: number, onComplete: AsyncCompletion, why: string, threads = IO_THREADS_DEFAULT) {
    this.#onComplete = onComplete;
    const buffer = new SharedArrayBuffer(poolBufferBytes(capacity));
    this.#completionFd = libc.eventfd(0, 0);
    this.#pool = poolViews(buffer, capacity);
    this.#workers = [];
    this.#stopped = [];
    for (let index = 0; index < threads; index += 1) {
      const worker = new Worker(IO_THREAD_WORKER_URL);
      this.#stopped.push(
        new Promise((resolve, reject) => {
          worker.addEventListener("message", () => resolve());
          worker.addEventListener("error", (event) => reject(new Error(`I/O thread failed: ${event.message}`)));
        }),
      );
      const start: PoolWorkerStart = { buffer, capacity, completionFd: this.#completionFd };
      worker.postMessage(start);
      this.#workers.push(worker);
    }
    this.description = `${threads} I/O threads (io_uring unavailable: ${why})`;
    this.#watch = watchReadable(this.#completionFd, 8, () => this.#drain(), (reason) => {
      if (this.#running) throw new Error(`I/O thread completion waiter stopped: ${reason}`);
    });
  }

  readv(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number): void {
    this.#queue(JOB_READV, token, fd, iovecAddress, iovecCount, offsetBytes, 0);
  }

  writev(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, rwFlags: number): void {
    this.#queue(JOB_WRITEV, token, fd, iovecAddress, iovecCount, offsetBytes, rwFlags);
  }

  fdatasync(token: number, fd: number): void {
    this.#queue(JOB_FDATASYNC, token, fd, 0, 0, 0, 0);
  }

  async close(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (let index = 0; index < this.#workers.length; index += 1) this.#pool.submissionQueue[this.#submitTail++ & this.#pool.mask] = STOP_TOKEN;
    this.#publish();
    await Promise.allSettled(this.#stopped);
    for (const worker of this.#workers) worker.terminate();
    await this.#watch.stop();
    libc.close(this.#completionFd);
  }

  #queue(op: number, token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, rwFlags: number): void {
    const pool = this.#pool;
    pool.op[token] = op;
    pool.fd[token] = fd;
    pool.iovecAddress[token] = iovecAddress;
    pool.iovecCount[token] = iovecCount;
    pool.offsetBytes[token] = offsetBytes;
    pool.rwFlags[token] = rwFlags;
    pool.submissionQueue[this.#submitTail & pool.mask] = token;
    this.#submitTail = (this.#submitTail + 1) | 0;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#publish();
  };

  /** Makes the queued jobs visible and wakes the threads once for the whole batch. */
  #publish(): void {
    if (this.#published === this.#submitTail) return;
    this.#published = this.#submitTail;
    Atomics.store(this.#pool.control, CONTROL_SUBMIT_TAIL, this.#submitTail);
    // Every waiting thread wakes: each holds its own ticket and goes back to sleep if the
    // batch does not reach it.
    Atomics.notify(this.#pool.control, CONTROL_SUBMIT_TAIL);
  }

  #drain(): void {
    const pool = this.#pool;
    for (;;) {
      const slot = this.#completionHead & pool.mask;
      if (Atomics.load(pool.completionSequence, slot) !== ((this.#completionHead + 1) | 0)) return;
      const token = pool.completionTokens[slot]!;
      this.#completionHead = (this.#completionHead + 1) | 0;
      this.#onComplete(token, pool.result[token]!);
    }
  }
}
