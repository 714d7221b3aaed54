// Paces the engine: a wake-up schedules one bounded batch; while entries remain and batches make
// progress, the next batch runs after yielding to the event loop, so one busy device cannot
// starve the others or the control plane. A batch that read nothing is waiting for commands in
// flight to free slots or bytes: the engine calls onPendingWork when they do, so the driver
// never spins on a full device. Used where the engine runs on an event loop (the in-process
// simulator and tests); a data-plane worker runs its batches itself (worker-loop.ts), and
// busy-polls there (`serve --poll-us`).
import type { RingEngine } from "./engine.ts";

export class RingDriver {
  readonly engine: RingEngine;
  #scheduled = false;

  constructor(engine: RingEngine) {
    this.engine = engine;
    engine.onPendingWork = this.kick;
  }

  /**
   * Called on every wake-up (simulator interrupt, freed room); coalesces into one batch. A
   * wake-up for entries already read (two wake paths for one interrupt) costs one load.
   */
  readonly kick = (): void => {
    if (this.#scheduled || !this.engine.hasPendingEntries) return;
    this.#scheduled = true;
    queueMicrotask(this.#run);
  };

  readonly #run = (): void => {
    this.#scheduled = false;
    const engine = this.engine;
    if (engine.processRing() === 0 || !engine.hasPendingEntries || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#run);
  };
}
