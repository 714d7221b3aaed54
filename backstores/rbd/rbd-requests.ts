// The requests an rbd image has in flight, and how their completions come back. librbd never
// calls into JavaScript: completions are made with no callback and the image queues them on an
// eventfd (rbd_set_image_notification), which the data-plane worker's epoll watches beside its
// devices (readable-watch.ts); rbd_poll_io_events reaps them. One kind of request is not queued
// there: librbd 16 does not mark a compare-and-write for event notification, so those are
// "polled" — looked at with rbd_aio_is_complete on every reap and on the image's timer, which
// ticks every millisecond while one is pending and every RBD_SIZE_CHECK_MS otherwise.
import { ptr, type Pointer } from "bun:ffi";
import { watchReadable, type ReadableWatch } from "../../src/data-plane/readable-watch.ts";
import { errnoName } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { SLOT_COUNT_DEFAULT } from "../../src/ring/engine.ts";
import { EVENT_TYPE_EVENTFD, type Librbd } from "./librbd-binding.ts";

/**
 * Requests in flight per image, of every kind: each ring slot holds at most one at a time (a
 * durable write flushes after its write), and EXTENDED COPY chunks from other workers come on top.
 */
export const RBD_REQUESTS_MAX = 2 * SLOT_COUNT_DEFAULT;
/** Completions reaped per rbd_poll_io_events call. */
const POLL_BATCH = 64;
const EVENTFD_READ_BYTES = 8;
const TIMERFD_READ_BYTES = 8;
/** How often the image's size is looked at (librbd keeps it current from the header's watch). */
export const RBD_SIZE_CHECK_MS = 2000;
/** The timer's period while a polled completion is pending. */
const POLLED_CHECK_MS = 1;

/** Starts one librbd call for `slot` with `completion`; returns librbd's status (< 0: refused). */
export type StartRequest = (slot: number, completion: Pointer) => number;

export class RbdRequests {
  readonly #lib: Librbd;
  /** The rbd_image_t the requests go to. */
  readonly image: Pointer;
  readonly #eventFd: number;
  readonly #watch: ReadableWatch;
  readonly #timerFd: number;
  readonly #timerWatch: ReadableWatch;
  readonly #onPeriod: () => void;
  /** Per slot: who hears the result (librbd's return value: ≥ 0 done, < 0 -errno). */
  readonly #settles: (((result: number) => void) | undefined)[] = new Array(RBD_REQUESTS_MAX).fill(undefined);
  /** Per slot: memory librbd reads or writes until the request completes, kept reachable. */
  readonly #held: (object | undefined)[] = new Array(RBD_REQUESTS_MAX).fill(undefined);
  readonly #freeSlots: number[] = [];
  /** Completions librbd will not queue on the eventfd, by slot; at most one per slot. */
  readonly #polled = new Map<number, Pointer>();
  #inFlight = 0;
  #closed = false;
  #lastPeriodMs = performance.now();
  /** Space for rbd_aio_create_completion's out-parameter and poll results. */
  readonly #completionOut = new BigUint64Array(1);
  readonly #reaped = new BigUint64Array(POLL_BATCH);

  /** `onPeriod` runs every RBD_SIZE_CHECK_MS on the image's timer (the size check). */
  constructor(lib: Librbd, image: Pointer, onPeriod: () => void) {
    this.#lib = lib;
    this.image = image;
    this.#onPeriod = onPeriod;
    for (let slot = RBD_REQUESTS_MAX - 1; slot >= 0; slot -= 1) this.#freeSlots.push(slot);
    this.#eventFd = libc.eventfd(0, 0);
    const status = lib.rbd.rbd_set_image_notification(image, this.#eventFd, EVENT_TYPE_EVENTFD);
    if (status < 0) {
      libc.close(this.#eventFd);
      throw new Error(`rbd_set_image_notification: ${errnoName(-status)}`);
    }
    this.#watch = watchReadable(this.#eventFd, EVENTFD_READ_BYTES, this.#reap, (reason) => {
      if (!this.#closed) throw new Error(`rbd completion watch stopped: ${reason}`);
    });
    this.#timerFd = libc.timerfdPeriodic(RBD_SIZE_CHECK_MS);
    this.#timerWatch = watchReadable(this.#timerFd, TIMERFD_READ_BYTES, this.#tick, () => {});
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Runs `start` in a free slot with a completion whose cb_arg names the slot (slot + 1: never
   * NULL). `settle` gets the result once: from the completion, or librbd's refusal to start.
   * `polled`: librbd will not queue this completion on the eventfd. Throws when closed or full.
   */
  submit(start: StartRequest, settle: (result: number) => void, options: { polled?: boolean; hold?: object } = {}): void {
    if (this.#closed) throw new Error("the rbd image is closed");
    const slot = this.#freeSlots.pop();
    if (slot === undefined) throw new Error(`more than ${RBD_REQUESTS_MAX} rbd requests in flight`);
    this.#settles[slot] = settle;
    this.#held[slot] = options.hold;
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
      return;
    }
    if (options.polled === true) {
      this.#polled.set(slot, completion);
      if (this.#polled.size === 1) libc.timerfdSetPeriod(this.#timerFd, POLLED_CHECK_MS);
    }
  }

  /** Waits for what is in flight (librbd finishes it on close anyway), then lets go of the descriptors. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#inFlight > 0) {
      await Bun.sleep(1);
      this.#reap();
    }
    this.#closed = true;
    await this.#timerWatch.stop();
    libc.close(this.#timerFd);
    await this.#watch.stop();
    libc.close(this.#eventFd);
  }

  #completion(slot: number): Pointer {
    const status = this.#lib.rbd.rbd_aio_create_completion((slot + 1) as unknown as Pointer, null, ptr(this.#completionOut));
    if (status < 0) throw new Error(`rbd_aio_create_completion: ${errnoName(-status)}`);
    return Number(this.#completionOut[0]!) as Pointer;
  }

  #free(slot: number): void {
    this.#settles[slot] = undefined;
    this.#held[slot] = undefined;
    this.#freeSlots.push(slot);
    this.#inFlight -= 1;
  }

  #finish(slot: number, result: number): void {
    const settle = this.#settles[slot];
    if (settle === undefined) throw new Error(`rbd completion for slot ${slot}, which has no request`);
    this.#free(slot);
    settle(result);
  }

  /** Every completion the image has queued, and every polled one that is done; each settled once. */
  readonly #reap = (): void => {
    const rbd = this.#lib.rbd;
    for (;;) {
      const count = rbd.rbd_poll_io_events(this.image, ptr(this.#reaped), POLL_BATCH);
      for (let index = 0; index < count; index += 1) {
        const completion = Number(this.#reaped[index]!) as Pointer;
        const slot = Number(rbd.rbd_aio_get_arg(completion)) - 1;
        const result = Number(rbd.rbd_aio_get_return_value(completion));
        rbd.rbd_aio_release(completion);
        this.#finish(slot, result);
      }
      if (count < POLL_BATCH) break;
    }
    if (this.#polled.size > 0) this.#reapPolled();
  };

  #reapPolled(): void {
    const rbd = this.#lib.rbd;
    for (const [slot, completion] of this.#polled) {
      if (rbd.rbd_aio_is_complete(completion) === 0) continue;
      this.#polled.delete(slot);
      const result = Number(rbd.rbd_aio_get_return_value(completion));
      rbd.rbd_aio_release(completion);
      this.#finish(slot, result);
    }
    if (this.#polled.size === 0 && !this.#closed) libc.timerfdSetPeriod(this.#timerFd, RBD_SIZE_CHECK_MS);
  }

  readonly #tick = (): void => {
    if (this.#closed) return;
    if (this.#polled.size > 0) this.#reapPolled();
    const now = performance.now();
    if (now - this.#lastPeriodMs < RBD_SIZE_CHECK_MS) return;
    this.#lastPeriodMs = now;
    this.#onPeriod();
  };
}
