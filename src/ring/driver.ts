// Paces the engine: a wake-up schedules one bounded batch; while entries remain, the next batch
// runs after yielding to the event loop, so one busy device cannot starve the others or the
// control plane.
import type { RingEngine } from "./engine.ts";

export class RingDriver {
  readonly engine: RingEngine;
  #scheduled = false;

  constructor(engine: RingEngine) {
    this.engine = engine;
  }

  /** Called on every wake-up (UIO interrupt or simulator); coalesces into one batch. */
  readonly kick = (): void => {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#run);
  };

  readonly #run = (): void => {
    this.#scheduled = false;
    this.engine.processRing();
    if (this.engine.hasPendingEntries && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  };
}
