// Decides whether a buffered write may run inline on the event loop's thread. Inline is far
// cheaper than a hop to another thread (io_uring punts buffered writes to its workers on most
// file systems; the I/O threads are a hop by design) — as long as the write only copies into
// the page cache. When the kernel starts throttling (dirty pages over the limit, a partial page
// read from disk), a write can sleep for milliseconds, and inline it would stall every device of
// the process: one such write switches the store to async writes for a while.

/**
 * An inline write that took longer than this, plus its length at the slowest copy rate worth
 * allowing, was waiting for the disk rather than copying (emulated CPUs copy slowly too).
 */
export const INLINE_WRITE_STALL_MS = 2;
export const INLINE_COPY_BYTES_PER_MS = 100_000;
/** After a stall, writes go async for this long before inline is tried again. */
export const INLINE_WRITE_BACKOFF_MS = 1000;

export class StallGuard {
  /** Inline writes found stalling so far (for diagnostics). */
  stalls = 0;
  #asyncUntilMs = 0;

  /** True when the next write may run inline. */
  allowsInline(nowMs: number): boolean {
    return nowMs >= this.#asyncUntilMs;
  }

  /** Reports how long an inline write of `lengthBytes` took, from `startedMs` to `endedMs`. */
  record(lengthBytes: number, startedMs: number, endedMs: number): void {
    if (endedMs - startedMs <= INLINE_WRITE_STALL_MS + lengthBytes / INLINE_COPY_BYTES_PER_MS) return;
    this.stalls += 1;
    this.#asyncUntilMs = endedMs + INLINE_WRITE_BACKOFF_MS;
  }
}
