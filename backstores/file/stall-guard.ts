// Decides whether a buffered write may run inline on the event loop's thread. Inline is far
// cheaper than a hop to another thread (io_uring punts buffered writes to its workers on most
// file systems; the I/O threads are a hop by design) — as long as the write only copies into
// the page cache. When the kernel starts throttling (dirty pages over the limit, a partial page
// read from disk), a write can sleep for tens of milliseconds, and inline it would stall every
// device of the process: one such write sends the store's next writes async for a while.
//
// One write in SAMPLE_EVERY is timed: throttling lasts, so sampling finds it, and a clock read
// per write would cost a system call where the clock has no vDSO path (emulated machines).

/**
 * A timed write that took longer than this, plus its length at the slowest copy rate worth
 * allowing, was waiting for the disk rather than copying. Dirty-page throttling sleeps for tens
 * of ms; a copy, even on an emulated CPU with a busy neighbour, rarely passes 10.
 */
export const INLINE_WRITE_STALL_MS = 10;
export const INLINE_COPY_BYTES_PER_MS = 100_000;
/** After a stall, this many writes go async before inline is tried again. */
export const INLINE_WRITE_BACKOFF_WRITES = 1000;
/** Inline writes timed: one in this many (a power of two). */
const SAMPLE_EVERY = 8;

export class StallGuard {
  /** Inline writes found stalling so far (for diagnostics). */
  stalls = 0;
  #asyncWritesLeft = 0;
  #writes = 0;

  /** True when this write may run inline; counts the write either way. */
  allowsInline(): boolean {
    this.#writes += 1;
    if (this.#asyncWritesLeft === 0) return true;
    this.#asyncWritesLeft -= 1;
    return false;
  }

  /** Whether to time the write allowsInline() just admitted. */
  sampled(): boolean {
    return (this.#writes & (SAMPLE_EVERY - 1)) === 0;
  }

  /** Reports how long a timed inline write of `lengthBytes` took. */
  record(lengthBytes: number, elapsedMs: number): void {
    if (elapsedMs <= INLINE_WRITE_STALL_MS + lengthBytes / INLINE_COPY_BYTES_PER_MS) return;
    this.stalls += 1;
    this.#asyncWritesLeft = INLINE_WRITE_BACKOFF_WRITES;
  }
}
