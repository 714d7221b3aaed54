// How long the driver busy-polls cmd_head after a batch left the device idle. At queue depth 1
// the next command arrives one initiator round trip after our doorbell; polling for it saves the
// interrupt wake-up, but burns the CPU for the whole window, so the window follows what the
// device does. It is counted in loads of cmd_head, not in clock reads: reading the clock per
// command costs a system call where the clock source has no vDSO path (emulated machines, some
// VMs), more than the poll itself saves. The loads-per-millisecond rate is measured on windows
// that run out, the only clock reads made here.
//
//  - Only after a run of single-entry batches (a queue-depth-1 rhythm): deeper queues keep the
//    CPU for the initiator and the kernel.
//  - The window is twice the typical number of loads before a command showed up, at most the
//    cap; unknown at first, it starts at the cap.
//  - A window that catches nothing pauses polling for a while, longer after each miss in a row:
//    a device gone quiet, or one whose initiator our polling itself delays, stops paying for it.

/** Weight of the newest observation in running averages. */
const AVERAGE_WEIGHT = 0.25;
/** Poll for this many typical waits: enough to catch most arrivals, not the stragglers. */
const WINDOW_WAITS = 2;
/** After a window that caught nothing, this many idle periods go unpolled, doubling per miss in a row. */
const COOLDOWN_IDLES = 8;
const COOLDOWN_IDLES_MAX = 1024;
/** Consecutive single-entry batches that make a queue-depth-1 rhythm. */
const QD1_STREAK = 8;
/** Before any window has been timed: a deliberately low rate (short first windows). */
const LOADS_PER_MS_INITIAL = 1000;

export class PollWindow {
  /** Longest window, ms (0: never poll). */
  readonly maxMs: number;
  hits = 0;
  misses = 0;
  #loadsPerMs = LOADS_PER_MS_INITIAL;
  #averageLoadsToHit = Number.POSITIVE_INFINITY;
  #cooldown = 0;
  #missesInRow = 0;
  #streak = 0;

  constructor(maxMs: number) {
    this.maxMs = maxMs;
  }

  /** A batch of `entries` left nothing in flight. */
  idle(entries: number): void {
    this.#streak = entries === 1 ? this.#streak + 1 : 0;
    if (this.#cooldown > 0) this.#cooldown -= 1;
  }

  /** A batch that did not leave the device idle (commands still in flight): not a QD1 rhythm. */
  busy(): void {
    this.#streak = 0;
  }

  /** The window to poll now, in loads of cmd_head; 0 when polling would not pay. */
  windowLoads(): number {
    if (this.maxMs <= 0 || this.#cooldown > 0 || this.#streak < QD1_STREAK) return 0;
    const capLoads = this.maxMs * this.#loadsPerMs;
    return Math.ceil(Math.min(capLoads, WINDOW_WAITS * this.#averageLoadsToHit));
  }

  /** A command showed up after `loads` loads. */
  hit(loads: number): void {
    this.hits += 1;
    this.#missesInRow = 0;
    this.#averageLoadsToHit = Number.isFinite(this.#averageLoadsToHit) ? this.#averageLoadsToHit + AVERAGE_WEIGHT * (loads - this.#averageLoadsToHit) : loads;
  }

  /** A window of `loads` loads caught nothing; it took `elapsedMs` (or NaN when not timed). */
  missed(loads: number, elapsedMs: number): void {
    this.misses += 1;
    this.#cooldown = Math.min(COOLDOWN_IDLES_MAX, COOLDOWN_IDLES << this.#missesInRow);
    this.#missesInRow = Math.min(this.#missesInRow + 1, 16);
    if (elapsedMs > 0) this.#loadsPerMs += AVERAGE_WEIGHT * (loads / elapsedMs - this.#loadsPerMs);
  }
}
