// One I/O thread of the file store's fallback engine (used where io_uring is unavailable): takes
// jobs from the shared submission queue, makes one preadv / pwritev2 / fdatasync call each,
// publishes the result and wakes its owner through an eventfd. Short transfers and errors are the main
// thread's business. This file sits beside main.ts because `bun build --compile` only finds
// workers next to the main entry.
import {
  CONTROL_CLAIM,
  CONTROL_COMPLETE_RESERVE,
  CONTROL_COMPLETION_SIGNAL,
  CONTROL_SUBMIT_TAIL,
  JOB_FDATASYNC,
  JOB_READV,
  JOB_WRITEV,
  poolViews,
  STOP_TOKEN,
  type PoolViews,
  type PoolWorkerStart,
} from "../backstores/file/thread-pool-protocol.ts";
import { SystemCallError } from "./libc/errno.ts";
import * as libc from "./libc/libc.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<PoolWorkerStart>) => {
  const pool = poolViews(event.data.buffer, event.data.capacity);
  const completionFd = event.data.completionFd;
  for (;;) {
    const token = claimJob(pool);
    if (token === STOP_TOKEN) break;
    pool.result[token] = perform(pool, token);
    publish(pool, token);
    announce(completionFd);
  }
  self.postMessage("stopped");
};

/** Takes the next ticket and waits until the main thread has put a job under it. */
function claimJob(pool: PoolViews): number {
  const control = pool.control;
  const ticket = Atomics.add(control, CONTROL_CLAIM, 1);
  for (;;) {
    const tail = Atomics.load(control, CONTROL_SUBMIT_TAIL);
    if (((tail - ticket) | 0) > 0) return Atomics.load(pool.submissionQueue, ticket & pool.mask);
    Atomics.wait(control, CONTROL_SUBMIT_TAIL, tail);
  }
}

function perform(pool: PoolViews, token: number): number {
  const fd = pool.fd[token]!;
  switch (pool.op[token]) {
    case JOB_READV:
      return libc.preadvRaw(fd, pool.iovecAddress[token]!, pool.iovecCount[token]!, pool.offsetBytes[token]!);
    case JOB_WRITEV:
      return libc.pwritevRaw(fd, pool.iovecAddress[token]!, pool.iovecCount[token]!, pool.offsetBytes[token]!, pool.rwFlags[token]!);
    case JOB_FDATASYNC:
      try {
        libc.fdatasync(fd);
        return 0;
      } catch (error) {
        if (error instanceof SystemCallError) return -error.errno;
        throw error;
      }
    default:
      throw new Error(`I/O thread got unknown job ${pool.op[token]} for token ${token}`);
  }
}

const ONE = new BigUint64Array([1n]);

/** Wakes the owner: its epoll (or wait thread) sees the eventfd readable. */
function announce(completionFd: number): void {
  libc.write(completionFd, ONE, 8);
}

function publish(pool: PoolViews, token: number): void {
  const control = pool.control;
  const ticket = Atomics.add(control, CONTROL_COMPLETE_RESERVE, 1);
  pool.completionTokens[ticket & pool.mask] = token;
  Atomics.store(pool.completionSequence, ticket & pool.mask, (ticket + 1) | 0);
  Atomics.add(control, CONTROL_COMPLETION_SIGNAL, 1);
}
