// Sits between the ring engine and the SCSI unit: counts every command and times a sample of
// them, without allocating on the synchronous path (per-slot completion callbacks are made once
// and reused), and can hold new commands back while the unit underneath is swapped (a RECONFIG
// that reopens the backstore): quiesce() closes the gate and waits for running commands,
// resume() swaps and lets the held ones run.
import type { ScsiCommand } from "../ring/command.ts";
import type { CommandExecutor } from "../ring/engine.ts";
import type { DeviceMetrics } from "./device-metrics.ts";

const MS_PER_SECOND = 1000;
/**
 * Commands whose latency is measured: one in this many. A clock read is a system call where the
 * clock has no vDSO path (emulated machines: two per command were the most frequent system call
 * of a busy device, docs/benchmarks.md); an unbiased sample keeps the histogram's shape.
 */
export const LATENCY_SAMPLE_EVERY_DEFAULT = 16;

export class AccountingExecutor implements CommandExecutor {
  readonly metrics: DeviceMetrics;
  #target: CommandExecutor;
  /** Commands inside #target.execute (sync or awaiting its promise). */
  #running = 0;
  #gate: Promise<void> | undefined;
  #openGate: (() => void) | undefined;
  #whenDrained: (() => void) | undefined;
  /** One command per ring slot at a time: its callbacks are made on the slot's first use. */
  readonly #slotCommands: (ScsiCommand | undefined)[] = [];
  readonly #slotSettled: (() => void)[] = [];
  readonly #latencySampleEvery: number;
  #dispatched = 0;

  constructor(target: CommandExecutor, metrics: DeviceMetrics, latencySampleEvery = LATENCY_SAMPLE_EVERY_DEFAULT) {
    if (!Number.isInteger(latencySampleEvery) || latencySampleEvery < 1) throw new Error(`latencySampleEvery must be a positive integer, not ${latencySampleEvery}`);
    this.#target = target;
    this.metrics = metrics;
    this.#latencySampleEvery = latencySampleEvery;
  }

  get runningCount(): number {
    return this.#running;
  }

  execute(command: ScsiCommand): void | Promise<void> {
    // NaN: not timed. The first command is always timed, then one in latencySampleEvery.
    command.startedAtMs = this.#dispatched % this.#latencySampleEvery === 0 ? performance.now() : Number.NaN;
    this.#dispatched += 1;
    if (this.#gate !== undefined) return this.#gate.then(() => this.#run(command));
    return this.#run(command);
  }

  failInternally(command: ScsiCommand, reason: "malformed-entry" | "internal-error"): void {
    this.#target.failInternally(command, reason);
    // Malformed entries never reached execute(): their clock starts here.
    if (reason === "malformed-entry") command.startedAtMs = performance.now();
    this.#account(command);
  }

  /** Holds new commands back and resolves once none is running in the current target. */
  quiesce(): Promise<void> {
    this.#gate ??= new Promise((resolve) => (this.#openGate = resolve));
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#whenDrained = resolve));
  }

  /** Switches to `target` (when given) and runs what was held back. */
  resume(target?: CommandExecutor): void {
    if (target !== undefined) this.#target = target;
    const open = this.#openGate;
    this.#gate = undefined;
    this.#openGate = undefined;
    open?.();
  }

  #run(command: ScsiCommand): void | Promise<void> {
    this.#running += 1;
    let result: void | Promise<void>;
    try {
      result = this.#target.execute(command);
    } catch (error) {
      // The engine turns the exception into failInternally(), which accounts the command.
      this.#leave();
      throw error;
    }
    if (result === undefined) {
      this.#leave();
      this.#account(command);
      return;
    }
    const slot = command.slotIndex;
    this.#slotCommands[slot] = command;
    const settled = (this.#slotSettled[slot] ??= () => this.#settleSlot(slot));
    // A rejection reaches the engine through `result` itself and ends in failInternally().
    result.then(settled, this.#leaveAfterRejection);
    return result;
  }

  #settleSlot(slot: number): void {
    const command = this.#slotCommands[slot]!;
    this.#slotCommands[slot] = undefined;
    this.#leave();
    this.#account(command);
  }

  readonly #leaveAfterRejection = (): void => this.#leave();

  #leave(): void {
    this.#running -= 1;
    if (this.#running === 0 && this.#whenDrained !== undefined) {
      const drained = this.#whenDrained;
      this.#whenDrained = undefined;
      drained();
    }
  }

  #account(command: ScsiCommand): void {
    const startedAtMs = command.startedAtMs;
    this.metrics.record(command, Number.isNaN(startedAtMs) ? Number.NaN : (performance.now() - startedAtMs) / MS_PER_SECOND);
  }
}
