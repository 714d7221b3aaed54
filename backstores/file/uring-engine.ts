// The io_uring engine. Requests queued during one job of the event loop are submitted together
// at its end (a microtask): one io_uring_enter per batch. Completions arrive two ways:
//  - inline: a read served from the page cache (on file systems that support non-blocking I/O)
//    completes inside io_uring_enter, and is reaped right after it, with no thread involved;
//  - later: work the kernel punted to its io-wq threads, or that waited for a page, posts its
//    CQE and signals the eventfd registered with the ring. A data-plane worker's epoll watches
//    that eventfd beside its devices (readable-watch.ts) and reaps in the same wait.
// Eventfd signalling is switched off around our own submit-and-reap, so inline completions
// never wake the thread for nothing.
import { EAGAIN, EBUSY, EINTR, errnoName } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { IoUring, IoUringError } from "../../src/io-uring/ring.ts";
import { IORING_OP_FSYNC, IORING_OP_READV, IORING_OP_WRITEV } from "../../src/io-uring/uapi.ts";
import { defer, watchReadable, type ReadableWatch } from "../../src/data-plane/readable-watch.ts";
import type { AsyncCompletion, AsyncEngine } from "./async-engine.ts";

/** The eventfd counter is a u64; the wait worker reads it whole. */
const EVENTFD_READ_BYTES = 8;

export class UringEngine implements AsyncEngine {
  readonly kind = "io_uring";
  readonly description: string;
  readonly #ring: IoUring;
  readonly #eventFd: number;
  readonly #waiter: ReadableWatch;
  readonly #onComplete: AsyncCompletion;
  #flushScheduled = false;
  #retryScheduled = false;
  #closed = false;

  private constructor(ring: IoUring, onComplete: AsyncCompletion) {
    this.#ring = ring;
    this.#onComplete = onComplete;
    this.#eventFd = libc.eventfd(0, 0);
    try {
      ring.registerEventfd(this.#eventFd);
    } catch (error) {
      libc.close(this.#eventFd);
      throw error;
    }
    this.#waiter = watchReadable(this.#eventFd, EVENTFD_READ_BYTES, this.#flush, (reason) => {
      // Without the waiter, punted requests would never complete: that is our bug, not I/O.
      if (!this.#closed) throw new Error(`io_uring completion waiter stopped: ${reason}`);
    });
    this.description = `io_uring (${ring.sqEntries} entries)`;
  }

  /**
   * Sets up a ring for `capacity` requests in flight and checks it can do READV, WRITEV and
   * FSYNC. Throws IoUringError (ENOSYS, EPERM from seccomp or kernel.io_uring_disabled…).
   */
  static open(capacity: number, onComplete: AsyncCompletion): UringEngine {
    const ring = IoUring.open(capacity);
    try {
      const supported = ring.supportedOpcodes();
      // No probe (before 5.6) still means 5.1+, which has all three.
      for (const opcode of [IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC]) {
        if (supported !== undefined && !supported.has(opcode)) throw new IoUringError(`io_uring opcode ${opcode}`, 95);
      }
      return new UringEngine(ring, onComplete);
    } catch (error) {
      ring.close();
      throw error;
    }
  }

  readv(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number): void {
    this.#ring.prepareReadv(fd, iovecAddress, iovecCount, offsetBytes, token);
    this.#schedule();
  }

  writev(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, rwFlags: number): void {
    this.#ring.prepareWritev(fd, iovecAddress, iovecCount, offsetBytes, rwFlags, token);
    this.#schedule();
  }

  fdatasync(token: number, fd: number): void {
    this.#ring.prepareFsync(fd, true, token);
    this.#schedule();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#waiter.stop();
    this.#ring.close();
    libc.close(this.#eventFd);
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flush);
  }

  /** Submits what is queued, then reaps every completion there is. Also the waiter's wake-up. */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#closed) return;
    const ring = this.#ring;
    ring.setEventfdSignalling(false);
    const submitted = ring.submit();
    ring.setEventfdSignalling(true);
    if (submitted < 0 && submitted !== -EAGAIN && submitted !== -EBUSY && submitted !== -EINTR) {
      throw new Error(`io_uring_enter failed: ${errnoName(-submitted)}`);
    }
    // Reaped after signalling is back on: a CQE posted before that is seen here, one after
    // it signals the eventfd.
    ring.reap(this.#onComplete);
    // EAGAIN/EBUSY (kernel short of memory, or completions overflowing): try again shortly.
    if (ring.unsubmitted > 0 && !this.#retryScheduled) {
      this.#retryScheduled = true;
      defer(this.#retry);
    }
  };

  readonly #retry = (): void => {
    this.#retryScheduled = false;
    this.#flush();
  };
}
