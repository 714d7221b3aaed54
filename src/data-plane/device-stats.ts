// A served device's numbers in one SharedArrayBuffer: the command accounting (DeviceMetrics)
// that its worker records per command, and the ring's counters and gauges that the worker
// publishes after each batch. The control plane (/metrics, /healthz, `list`) reads the same
// memory without a message to the worker and without stopping it.
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import type { RingCounters, RingEngine } from "../ring/engine.ts";

/** RingCounters field order in the buffer; the gauges follow. */
const COUNTER_NAMES = ["commands", "padEntries", "tmrEntries", "abortedCommands", "unknownEntries", "malformedEntries", "doorbells", "batches", "throttled"] as const satisfies readonly (keyof RingCounters)[];
const IN_FLIGHT = COUNTER_NAMES.length;
const OCCUPANCY = IN_FLIGHT + 1;
const CMDR_SIZE = OCCUPANCY + 1;
const BROKEN = CMDR_SIZE + 1;
const RING_WORDS = BROKEN + 1;

export const DEVICE_STATS_BYTES = DeviceMetrics.BYTES + RING_WORDS * 8;

export function newStatsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(DEVICE_STATS_BYTES);
}

/** What a scrape reads of the ring, the same shape as the engine's own getters. */
export type RingGauges = Pick<RingEngine, "inFlightCount" | "occupancyBytes" | "cmdrSizeBytes" | "broken" | "counters">;

/** The worker's side: copies the engine's counters and gauges into the buffer. */
export class RingStatsWriter {
  readonly #words: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Float64Array(buffer, DeviceMetrics.BYTES, RING_WORDS);
  }

  publish(engine: RingEngine): void {
    const words = this.#words;
    const counters = engine.counters;
    words[0] = counters.commands;
    words[1] = counters.padEntries;
    words[2] = counters.tmrEntries;
    words[3] = counters.abortedCommands;
    words[4] = counters.unknownEntries;
    words[5] = counters.malformedEntries;
    words[6] = counters.doorbells;
    words[7] = counters.batches;
    words[8] = counters.throttled;
    words[IN_FLIGHT] = engine.inFlightCount;
    words[OCCUPANCY] = engine.occupancyBytes;
    words[CMDR_SIZE] = engine.cmdrSizeBytes;
    words[BROKEN] = engine.broken ? 1 : 0;
  }
}

/** The control plane's side: reads what the worker last published. */
export class RingStatsReader implements RingGauges {
  readonly #words: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Float64Array(buffer, DeviceMetrics.BYTES, RING_WORDS);
  }

  get inFlightCount(): number {
    return this.#words[IN_FLIGHT]!;
  }

  get occupancyBytes(): number {
    return this.#words[OCCUPANCY]!;
  }

  get cmdrSizeBytes(): number {
    return this.#words[CMDR_SIZE]!;
  }

  get broken(): boolean {
    return this.#words[BROKEN] === 1;
  }

  get counters(): RingCounters {
    const words = this.#words;
    const counters = {} as RingCounters;
    COUNTER_NAMES.forEach((name, index) => (counters[name] = words[index]!));
    return counters;
  }
}
