// Paces the engine: a wake-up schedules one bounded batch; while entries remain and batches make
// progress, the next batch runs after yielding to the event loop, so one busy device cannot
// starve the others or the control plane. A batch that read nothing is waiting for commands in
// flight to free slots or bytes: the engine calls onPendingWork when they do, so the driver
// never spins on a full device.
//
// Busy-poll (poll-window.ts): after a small batch that left nothing in flight, the driver
// watches cmd_head for an adaptive window before going back to waiting for the interrupt. At
// queue depth 1 the next command usually arrives within one round trip through the initiator,
// and catching it here saves the wake-up. The window runs right after the batch, inside the
// same job of the event loop (a deferred one could outlive the mapping it reads), is bounded
// by its cap, and the event loop runs between windows; deeper queues never poll (their batches
// are not small, and the CPU is better left to the initiator and the kernel).
import type { RingEngine } from "./engine.ts";
import { PollWindow } from "./poll-window.ts";

/**
 * Off by default: on the real kernel measured here (QEMU/TCG, docs/benchmarks.md) polling did
 * not raise queue-depth-1 IOPS once SIGIO wakes the event loop directly, and it burns a core
 * while it waits. Natively a queue-depth-1 round trip through tcm_loop takes tens of µs; a cap
 * of 100–200 µs is the setting to try there.
 */
export const POLL_WINDOW_MAX_US_DEFAULT = 0;

export interface RingDriverOptions {
  /** Longest busy-poll window, µs (poll-window.ts); 0 turns polling off. */
  pollWindowMaxUs?: number;
}

export class RingDriver {
  readonly engine: RingEngine;
  readonly poll: PollWindow;
  #scheduled = false;

  constructor(engine: RingEngine, options: RingDriverOptions = {}) {
    this.engine = engine;
    engine.onPendingWork = this.kick;
    const maxUs = options.pollWindowMaxUs ?? POLL_WINDOW_MAX_US_DEFAULT;
    this.poll = new PollWindow(maxUs / 1000);
  }

  /**
   * Called on every wake-up (UIO interrupt, SIGIO, simulator, freed room); coalesces into one
   * batch. A wake-up for entries already read (two wake paths for one interrupt) costs one load.
   */
  readonly kick = (): void => {
    if (this.#scheduled || !this.engine.hasPendingEntries) return;
    this.#scheduled = true;
    queueMicrotask(this.#run);
  };

  readonly #run = (): void => {
    this.#scheduled = false;
    const engine = this.engine;
    const entries = engine.processRing();
    if (entries === 0) return;
    if (engine.hasPendingEntries) {
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#run);
      }
      return;
    }
    if (engine.inFlightCount > 0) return this.poll.busy();
    this.poll.idle(entries);
    const loads = this.poll.windowLoads();
    if (loads > 0 && !this.#scheduled) this.#pollFor(loads);
  };

  /** Loads cmd_head up to `loadsMax` times; a command that shows up is served at once. */
  #pollFor(loadsMax: number): void {
    const engine = this.engine;
    // Windows that run out are timed now and then, to keep loads-per-ms current as the JIT warms.
    const timed = (this.poll.misses & 15) === 0;
    const startedMs = timed ? performance.now() : 0;
    for (let loads = 1; loads <= loadsMax; loads += 1) {
      if (!engine.hasPendingEntries) continue;
      this.poll.hit(loads);
      this.#scheduled = true;
      queueMicrotask(this.#run);
      return;
    }
    this.poll.missed(loadsMax, timed ? performance.now() - startedMs : Number.NaN);
  }
}
