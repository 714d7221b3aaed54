// A served device's numbers in one SharedArrayBuffer: the command accounting (DeviceMetrics)
// that its worker records per command, and the ring's counters and gauges that the worker
// publishes after each batch. The control plane (/metrics, /healthz, `list`) reads the same
// memory without a message to the worker and without stopping it; other workers read the unit's
// state from it when their EXTENDED COPY names this device.
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import type { RingCounters, RingEngine } from "../ring/engine.ts";

/** RingCounters field order in the buffer; the gauges follow. */
const COUNTER_NAMES = ["commands", "padEntries", "tmrEntries", "abortedCommands", "unknownEntries", "malformedEntries", "doorbells", "batches", "throttled"] as const satisfies readonly (keyof RingCounters)[];
const IN_FLIGHT = COUNTER_NAMES.length;
const OCCUPANCY = IN_FLIGHT + 1;
const CMDR_SIZE = OCCUPANCY + 1;
const BROKEN = CMDR_SIZE + 1;
const RING_WORDS = BROKEN + 1;
/** The unit's state, for EXTENDED COPY on other workers (UnitStateReader): after the ring's words. */
const UNIT_BLOCK_SIZE = RING_WORDS;
const UNIT_CAPACITY = UNIT_BLOCK_SIZE + 1;
const UNIT_FLAGS = UNIT_CAPACITY + 1;
/** The unit's ALUA state, for /metrics and `list` (AluaGaugesReader): after the unit's words. */
const ALUA_GROUP = UNIT_FLAGS + 1;
const ALUA_STATE = ALUA_GROUP + 1;
const ALUA_OWNED = ALUA_STATE + 1;
const ALUA_TRANSITIONS = ALUA_OWNED + 1;
const WORDS = ALUA_TRANSITIONS + 1;
/** ALUA_GROUP before a unit with ALUA published (or for one without): no ALUA. */
const NO_ALUA = 0;
/** ALUA_OWNED for a medium without a lock (everything but rbd). */
const NO_MEDIUM_LOCK = -1;
const FLAG_STOPPED = 1;
const FLAG_WRITE_PROTECTED = 2;
const FLAG_WRITE_CACHE = 4;
const FLAG_CLOSED = 8;

export const DEVICE_STATS_BYTES = DeviceMetrics.BYTES + WORDS * 8;

export function newStatsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(DEVICE_STATS_BYTES);
}

/** What a scrape reads of the ring, the same shape as the engine's own getters. */
export type RingGauges = Pick<RingEngine, "inFlightCount" | "occupancyBytes" | "cmdrSizeBytes" | "broken" | "counters">;

/** What other workers' EXTENDED COPY sees of a unit (a CopyUnit's plain properties). */
export interface UnitState {
  readonly blockSizeBytes: number;
  readonly capacityBlocks: number;
  readonly stopped: boolean;
  readonly writeProtected: boolean;
  readonly writeCacheEnabled: boolean;
  readonly closed: boolean;
}

/** The worker's side: copies the engine's counters and gauges, and the unit's state, into the buffer. */
export class RingStatsWriter {
  readonly #words: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Float64Array(buffer, DeviceMetrics.BYTES, WORDS);
  }

  publishUnit(unit: UnitState): void {
    const words = this.#words;
    words[UNIT_BLOCK_SIZE] = unit.blockSizeBytes;
    words[UNIT_CAPACITY] = unit.capacityBlocks;
    words[UNIT_FLAGS] =
      (unit.stopped ? FLAG_STOPPED : 0) |
      (unit.writeProtected ? FLAG_WRITE_PROTECTED : 0) |
      (unit.writeCacheEnabled ? FLAG_WRITE_CACHE : 0) |
      (unit.closed ? FLAG_CLOSED : 0);
  }

  /**
   * The unit's ALUA group (0: none), its state (ALUA_STATE_CODES) and whether this gateway holds
   * the medium's lock (undefined: the medium has none). Plain numbers: this runs after every batch.
   */
  publishAlua(groupId: number, stateCode: number, ownsMedium: boolean | undefined, transitions: number): void {
    const words = this.#words;
    words[ALUA_GROUP] = groupId;
    words[ALUA_STATE] = stateCode;
    words[ALUA_OWNED] = ownsMedium === undefined ? NO_MEDIUM_LOCK : ownsMedium ? 1 : 0;
    words[ALUA_TRANSITIONS] = transitions;
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

/** Another worker's side: the unit state its owner last published (closed until it has). */
export class UnitStateReader implements UnitState {
  readonly #words: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Float64Array(buffer, DeviceMetrics.BYTES, WORDS);
  }

  get blockSizeBytes(): number {
    return this.#words[UNIT_BLOCK_SIZE]!;
  }

  get capacityBlocks(): number {
    return this.#words[UNIT_CAPACITY]!;
  }

  get stopped(): boolean {
    return (this.#flags & FLAG_STOPPED) !== 0;
  }

  get writeProtected(): boolean {
    return (this.#flags & FLAG_WRITE_PROTECTED) !== 0;
  }

  get writeCacheEnabled(): boolean {
    return (this.#flags & FLAG_WRITE_CACHE) !== 0;
  }

  /** Also true before the first publish (block size 0): nothing to copy from yet. */
  get closed(): boolean {
    return (this.#flags & FLAG_CLOSED) !== 0 || this.blockSizeBytes === 0;
  }

  get #flags(): number {
    return this.#words[UNIT_FLAGS]!;
  }
}

/** What /metrics and `list` read of a unit's ALUA state (undefined group: the unit has no ALUA). */
export class AluaGaugesReader {
  readonly #words: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Float64Array(buffer, DeviceMetrics.BYTES, WORDS);
  }

  /** The gateway's own target port group id; undefined without ALUA. */
  get groupId(): number | undefined {
    const id = this.#words[ALUA_GROUP]!;
    return id === NO_ALUA ? undefined : id;
  }

  /** The group's asymmetric access state code (SPC-4 table 171). */
  get stateCode(): number {
    return this.#words[ALUA_STATE]!;
  }

  /** Whether this gateway holds the medium's exclusive lock; undefined for a medium without one. */
  get ownsMedium(): boolean | undefined {
    const owned = this.#words[ALUA_OWNED]!;
    return owned === NO_MEDIUM_LOCK ? undefined : owned === 1;
  }

  get transitions(): number {
    return this.#words[ALUA_TRANSITIONS]!;
  }
}
