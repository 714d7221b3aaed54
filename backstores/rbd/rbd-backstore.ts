// A Ceph RBD image through librbd. Every operation is asynchronous and zero-copy: reads and
// writes hand librbd the iovecs of the mapped data area (rbd_aio_readv/writev), many in flight
// at once, completing in any order. librbd never calls into JavaScript: completions are queued
// by the image (rbd_set_image_notification on an eventfd), the data-plane worker's epoll sees
// the eventfd beside its devices (readable-watch.ts), and rbd_poll_io_events reaps them.
import { ptr, type Pointer } from "bun:ffi";
import { IovecArena } from "../file/iovec-arena.ts";
import { watchReadable, type ReadableWatch } from "../../src/data-plane/readable-watch.ts";
import { EAGAIN, ENOTCONN, errnoName, ESHUTDOWN, ETIMEDOUT } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { SLOT_COUNT_DEFAULT } from "../../src/ring/engine.ts";
import { BackstoreError, type Backstore, type BackstoreCapabilities, type LbaStatusExtent } from "../types.ts";
import { EVENT_TYPE_EVENTFD, librbd, type Librbd } from "./librbd-binding.ts";
import type { RbdImage } from "./rbd-image.ts";

/**
 * Requests in flight per image, of every kind: each ring slot holds at most one at a time (a
 * durable write flushes after its write), and EXTENDED COPY chunks from other workers come on top.
 */
export const RBD_REQUESTS_MAX = 2 * SLOT_COUNT_DEFAULT;
/** Completions reaped per rbd_poll_io_events call. */
const POLL_BATCH = 64;
const EVENTFD_READ_BYTES = 8;
/** How often the image's size is looked at (librbd keeps it current from the header's watch). */
export const RBD_SIZE_CHECK_MS = 2000;
const TIMERFD_READ_BYTES = 8;
/** librbd's write_zeroes flags and op flags: none. */
const NO_FLAGS = 0;

type Settle = (result: number) => void;

/**
 * librados answers these when the cluster, not the data, is the problem (an OSD or monitor past
 * its timeout, a session gone, this client blocklisted after a failover): retryable, so NOT READY
 * rather than a MEDIUM ERROR that would fail the initiator's I/O.
 */
const UNAVAILABLE_ERRNOS: ReadonlySet<number> = new Set([ETIMEDOUT, ENOTCONN, ESHUTDOWN /* blocklisted */, EAGAIN]);

function ioError(kind: "read" | "write", offsetBytes: number, result: number, what: string): BackstoreError {
  const errno = -result;
  return new BackstoreError(UNAVAILABLE_ERRNOS.has(errno) ? "unavailable" : kind, offsetBytes, `rbd ${what}: ${errnoName(errno)}`);
}

export class RbdBackstore implements Backstore {
  readonly kind = "rbd";
  readonly description: string;
  readonly capabilities: BackstoreCapabilities;
  readonly warnings: readonly string[];
  readonly #lib: Librbd;
  readonly #image: RbdImage;
  readonly #eventFd: number;
  readonly #watch: ReadableWatch;
  readonly #sizeTimerFd: number;
  readonly #sizeWatch: ReadableWatch;
  onGrow?: (sizeBytes: number) => void;
  /**
   * One slot per request in flight, whatever its kind: it holds the request's iovecs (reads and
   * writes) and who waits for it. The completion's cb_arg is slot + 1 (never NULL).
   */
  readonly #arena = new IovecArena(RBD_REQUESTS_MAX);
  readonly #settles: (Settle | undefined)[] = new Array<Settle | undefined>(RBD_REQUESTS_MAX).fill(undefined);
  readonly #freeSlots: number[] = [];
  #inFlight = 0;
  /** Space for rbd_aio_create_completion's out-parameter and poll results. */
  readonly #completionOut = new BigUint64Array(1);
  readonly #polled = new BigUint64Array(POLL_BATCH);
  #closed = false;
  #sizeBytes: number;

  constructor(image: RbdImage) {
    this.#lib = librbd();
    this.#image = image;
    this.#sizeBytes = image.sizeBytes;
    this.description = image.description;
    this.warnings = image.warnings;
    this.capabilities = {
      readOnly: image.readOnly,
      unmap: !image.readOnly,
      // A discarded range reads back as zeros (RBD objects are sparse; whole objects are removed).
      unmapReadsZeroes: true,
      lbaStatus: false,
      // FUA / WCE=0 writes are made durable with a flush (librbd's cache may hold them).
      volatileCache: true,
      unmapGranularityBytes: image.objectSizeBytes,
      optimalGranularityBytes: image.objectSizeBytes,
    };
    for (let slot = RBD_REQUESTS_MAX - 1; slot >= 0; slot -= 1) this.#freeSlots.push(slot);
    this.#eventFd = libc.eventfd(0, 0);
    const status = this.#lib.rbd.rbd_set_image_notification(image.handle, this.#eventFd, EVENT_TYPE_EVENTFD);
    if (status < 0) {
      libc.close(this.#eventFd);
      throw new Error(`rbd_set_image_notification: ${errnoName(-status)}`);
    }
    this.#watch = watchReadable(this.#eventFd, EVENTFD_READ_BYTES, this.#reap, (reason) => {
      if (!this.#closed) throw new Error(`rbd completion watch stopped: ${reason}`);
    });
    // A resize on the cluster (rbd resize) reaches no configfs attribute: the store notices it.
    this.#sizeTimerFd = libc.timerfdPeriodic(RBD_SIZE_CHECK_MS);
    this.#sizeWatch = watchReadable(this.#sizeTimerFd, TIMERFD_READ_BYTES, this.#checkSize, () => {});
  }

  /** The image grew: served larger from now on. A shrink is left to fail the I/O past the end. */
  readonly #checkSize = (): void => {
    if (this.#closed) return;
    let size: number;
    try {
      size = this.#image.currentSizeBytes();
    } catch {
      return; // the cluster is out of reach (a refresh timed out): the next period asks again
    }
    if (size <= this.#sizeBytes) return;
    this.#sizeBytes = size;
    this.onGrow?.(size);
  };

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): Promise<void> {
    return this.#vectored(false, offsetBytes, lengthBytes, target, targetStartBytes);
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): Promise<void> {
    const written = this.#vectored(true, offsetBytes, lengthBytes, source, sourceStartBytes);
    return durable ? written.then(() => this.flush()) : written;
  }

  flush(): Promise<void> {
    return this.#request("write", 0, "flush at 0", (_slot, completion) => this.#lib.rbd.rbd_aio_flush(this.#image.handle, completion));
  }

  unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    this.#checkWritable(offsetBytes);
    return this.#request("write", offsetBytes, `write at ${offsetBytes}`, (_slot, completion) =>
      this.#lib.rbd.rbd_aio_discard(this.#image.handle, offsetBytes, lengthBytes, completion),
    );
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, _deallocate: boolean, durable: boolean): Promise<void> {
    this.#checkWritable(offsetBytes);
    const zeroed = this.#request("write", offsetBytes, `write at ${offsetBytes}`, (_slot, completion) =>
      this.#lib.rbd.rbd_aio_write_zeroes(this.#image.handle, offsetBytes, lengthBytes, completion, NO_FLAGS, NO_FLAGS),
    );
    return durable ? zeroed.then(() => this.flush()) : zeroed;
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    return { mapped: true, lengthBytes: this.#sizeBytes - offsetBytes };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Nothing may complete into freed state: librbd finishes what is in flight on close.
    while (this.#inFlight > 0) {
      await Bun.sleep(1);
      this.#reap();
    }
    this.#closed = true;
    await this.#sizeWatch.stop();
    libc.close(this.#sizeTimerFd);
    await this.#watch.stop();
    this.#image.close();
    libc.close(this.#eventFd);
    this.#arena.close();
  }

  #checkWritable(offsetBytes: number): void {
    if (this.capabilities.readOnly) throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only`);
  }

  #vectored(write: boolean, offsetBytes: number, lengthBytes: number, segments: DataSegments, startBytes: number): Promise<void> {
    if (write) this.#checkWritable(offsetBytes);
    const kind = write ? "write" : "read";
    const rbd = this.#lib.rbd;
    const image = this.#image.handle;
    return this.#request(kind, offsetBytes, `${kind} of ${lengthBytes} bytes at ${offsetBytes}`, (slot, completion) => {
      const count = this.#arena.load(slot, segments, startBytes, lengthBytes);
      if (count < 0) throw new BackstoreError(kind, offsetBytes, `a transfer of more than ${this.#arena.iovecsPerSlot} segments`);
      const iovecs = this.#arena.addressOf(slot) as Pointer;
      return write ? rbd.rbd_aio_writev(image, iovecs, count, offsetBytes, completion) : rbd.rbd_aio_readv(image, iovecs, count, offsetBytes, completion);
    });
  }

  /**
   * One librbd call in a free slot: `start` submits it with a completion that names the slot and
   * returns librbd's status; the completion (or a refused submit) settles the promise.
   */
  #request(kind: "read" | "write", offsetBytes: number, what: string, start: (slot: number, completion: Pointer) => number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#closed) throw new Error(`${this.description} is closed`);
      const slot = this.#freeSlots.pop();
      if (slot === undefined) throw new Error(`more than ${RBD_REQUESTS_MAX} rbd requests in flight`);
      this.#settles[slot] = (result) => (result >= 0 ? resolve() : reject(ioError(kind, offsetBytes, result, what)));
      this.#inFlight += 1;
      let completion: Pointer | undefined;
      let status: number;
      try {
        completion = this.#completion(slot);
        status = start(slot, completion);
      } catch (error) {
        if (completion !== undefined) this.#lib.rbd.rbd_aio_release(completion);
        this.#free(slot);
        throw error;
      }
      if (status < 0) {
        this.#lib.rbd.rbd_aio_release(completion);
        this.#finish(slot, status);
      }
    });
  }

  /** A completion whose cb_arg names `slot` and no callback: librbd queues it for rbd_poll_io_events. */
  #completion(slot: number): Pointer {
    const status = this.#lib.rbd.rbd_aio_create_completion((slot + 1) as unknown as Pointer, null, ptr(this.#completionOut));
    if (status < 0) throw new Error(`rbd_aio_create_completion: ${errnoName(-status)}`);
    return Number(this.#completionOut[0]!) as Pointer;
  }

  #free(slot: number): void {
    this.#settles[slot] = undefined;
    this.#freeSlots.push(slot);
    this.#inFlight -= 1;
  }

  #finish(slot: number, result: number): void {
    const settle = this.#settles[slot];
    if (settle === undefined) throw new Error(`rbd completion for slot ${slot}, which has no request`);
    this.#free(slot);
    settle(result);
  }

  /** Every completion the image has queued, each settled once and released. */
  readonly #reap = (): void => {
    const rbd = this.#lib.rbd;
    for (;;) {
      const count = rbd.rbd_poll_io_events(this.#image.handle, ptr(this.#polled), POLL_BATCH);
      if (count <= 0) return;
      for (let index = 0; index < count; index += 1) {
        const completion = Number(this.#polled[index]!) as Pointer;
        const slot = Number(rbd.rbd_aio_get_arg(completion)) - 1;
        const result = Number(rbd.rbd_aio_get_return_value(completion));
        rbd.rbd_aio_release(completion);
        this.#finish(slot, result);
      }
      if (count < POLL_BATCH) return;
    }
  };
}
