// The recent past of every device: sampled once an interval (a second), each sample turned
// into rates from the delta of the device's cumulative counters, kept in fixed rings of the
// last STATUS_HISTORY_SAMPLES samples. Reading the counters is plain loads from the shared
// stats memory, so sampling costs the data plane nothing.
import { DeviceMetrics, OPCODE_GROUPS } from "../metrics/device-metrics.ts";
import { latencyQuantileMs } from "./latency-quantile.ts";
import { RATE_FIELDS, STATUS_HISTORY_SAMPLES, type RateField, type Rates, type RateSeries } from "./status-schema.ts";

/** What the history reads of a device: its name and its cumulative counters. */
export interface HistoryDevice {
  readonly name: string;
  readonly metrics: DeviceMetrics;
}

export interface ProcessSample {
  rssBytes: number;
  cpuPercent: number;
}

const READ_GROUP = OPCODE_GROUPS.indexOf("read");
const WRITE_GROUP = OPCODE_GROUPS.indexOf("write");
const BUCKETS = new DeviceMetrics().latencyBuckets.length;

export const ZERO_RATES: Readonly<Rates> = Object.freeze({
  iops: 0,
  readIops: 0,
  writeIops: 0,
  readBytesPerSecond: 0,
  writtenBytesPerSecond: 0,
  latencyP50Ms: null,
  latencyP99Ms: null,
});

/** The latest `capacity` numbers pushed; NaN stands for null. */
export class SampleRing {
  readonly #values: Float64Array;
  #next = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#values = new Float64Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(value: number | null): void {
    this.#values[this.#next] = value ?? Number.NaN;
    this.#next = (this.#next + 1) % this.#values.length;
    this.#length = Math.min(this.#length + 1, this.#values.length);
  }

  /** The newest `count` values (fewer if it holds fewer), oldest first, NaN as null. */
  latest(count: number): (number | null)[] {
    const taken = Math.min(count, this.#length);
    const capacity = this.#values.length;
    const out = new Array<number | null>(taken);
    for (let index = 0; index < taken; index += 1) {
      const value = this.#values[(this.#next - taken + index + capacity) % capacity]!;
      out[index] = Number.isNaN(value) ? null : value;
    }
    return out;
  }
}

/** One ring per rate field, pushed together so they stay aligned. */
class RateRings {
  readonly #rings: Record<RateField, SampleRing>;
  #latest: Rates = ZERO_RATES;

  constructor(capacity: number) {
    this.#rings = Object.fromEntries(RATE_FIELDS.map((field) => [field, new SampleRing(capacity)])) as Record<RateField, SampleRing>;
  }

  get latest(): Rates {
    return this.#latest;
  }

  push(rates: Rates): void {
    for (const field of RATE_FIELDS) this.#rings[field].push(rates[field]);
    this.#latest = rates;
  }

  /** The newest `count` samples, the last of which is `lastSeq`. */
  series(count: number, lastSeq: number): RateSeries {
    const length = Math.min(count, this.#rings.iops.length);
    const latest = (field: RateField) => this.#rings[field].latest(length);
    const counts = (field: RateField) => latest(field).map((value) => value ?? 0);
    return {
      firstSeq: lastSeq - length + 1,
      iops: counts("iops"),
      readIops: counts("readIops"),
      writeIops: counts("writeIops"),
      readBytesPerSecond: counts("readBytesPerSecond"),
      writtenBytesPerSecond: counts("writtenBytesPerSecond"),
      latencyP50Ms: latest("latencyP50Ms"),
      latencyP99Ms: latest("latencyP99Ms"),
    };
  }
}

interface CounterSnapshot {
  commands: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  buckets: Float64Array;
}

function snapshot(metrics: DeviceMetrics, into?: CounterSnapshot): CounterSnapshot {
  const counters = into ?? { commands: 0, reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, buckets: new Float64Array(BUCKETS) };
  counters.commands = metrics.completedCount;
  counters.reads = metrics.commandsByGroup[READ_GROUP]!;
  counters.writes = metrics.commandsByGroup[WRITE_GROUP]!;
  counters.bytesRead = metrics.bytesRead;
  counters.bytesWritten = metrics.bytesWritten;
  counters.buckets.set(metrics.latencyBuckets);
  return counters;
}

interface DeviceTrack {
  /** A device attached again under the same name has new counters: its object tells. */
  metrics: DeviceMetrics;
  previous: CounterSnapshot;
  /** The next tick's snapshot is read into this one, then the two swap. */
  spare: CounterSnapshot;
  rates: RateRings;
}

function newTrack(metrics: DeviceMetrics, baseline: DeviceMetrics, rates: RateRings): DeviceTrack {
  return { metrics, previous: snapshot(baseline), spare: snapshot(baseline), rates };
}

const round = (value: number, decimals: number) => Math.round(value * 10 ** decimals) / 10 ** decimals;
const ratePerSecond = (delta: number, seconds: number) => Math.max(0, delta) / seconds;
const latencyMs = (value: number | null) => (value === null ? null : round(value, 3));

export class StatusHistory {
  readonly capacity: number;
  readonly #devices = new Map<string, DeviceTrack>();
  readonly #aggregate: RateRings;
  readonly #rss: SampleRing;
  readonly #cpu: SampleRing;
  /** Scratch for one device's bucket deltas and the merged ones. */
  readonly #deltaBuckets = new Float64Array(BUCKETS);
  readonly #mergedBuckets = new Float64Array(BUCKETS);
  #lastSampleMs: number | undefined;
  #lastSeq = 0;

  constructor(capacity = STATUS_HISTORY_SAMPLES) {
    this.capacity = capacity;
    this.#aggregate = new RateRings(capacity);
    this.#rss = new SampleRing(capacity);
    this.#cpu = new SampleRing(capacity);
  }

  /** The newest sample's sequence number (1, 2, …); 0 before the first. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * One tick. The first only takes the baseline: counters from before the history started
   * are not a rate. A device first seen later was attached since the previous tick, so its
   * counters (new ones, from zero) are all this interval's.
   */
  sample(devices: readonly HistoryDevice[], nowMs: number, process: ProcessSample): void {
    const first = this.#lastSampleMs === undefined;
    const seconds = first ? 0 : (nowMs - this.#lastSampleMs!) / 1000;
    if (!first && seconds <= 0) return;
    this.#lastSampleMs = nowMs;
    const seen = new Set<string>();
    const merged = this.#mergedBuckets.fill(0);
    const total: Rates = { ...ZERO_RATES };
    for (const device of devices) {
      if (seen.has(device.name)) continue;
      seen.add(device.name);
      let track = this.#devices.get(device.name);
      if (first) {
        this.#devices.set(device.name, newTrack(device.metrics, device.metrics, new RateRings(this.capacity)));
        continue;
      }
      if (track === undefined || track.metrics !== device.metrics) {
        track = newTrack(device.metrics, new DeviceMetrics(), track?.rates ?? new RateRings(this.capacity));
        this.#devices.set(device.name, track);
      }
      const rates = this.#advance(track, seconds);
      for (let index = 0; index < BUCKETS; index += 1) merged[index]! += this.#deltaBuckets[index]!;
      total.iops += rates.iops;
      total.readIops += rates.readIops;
      total.writeIops += rates.writeIops;
      total.readBytesPerSecond += rates.readBytesPerSecond;
      total.writtenBytesPerSecond += rates.writtenBytesPerSecond;
    }
    for (const name of this.#devices.keys()) if (!seen.has(name)) this.#devices.delete(name);
    if (first) return;
    this.#lastSeq += 1;
    total.iops = round(total.iops, 1);
    total.readIops = round(total.readIops, 1);
    total.writeIops = round(total.writeIops, 1);
    total.latencyP50Ms = latencyMs(latencyQuantileMs(merged, 0.5));
    total.latencyP99Ms = latencyMs(latencyQuantileMs(merged, 0.99));
    this.#aggregate.push(total);
    this.#rss.push(process.rssBytes);
    this.#cpu.push(round(process.cpuPercent, 1));
  }

  /** Pushes the device's rates since its previous snapshot; leaves its bucket deltas in #deltaBuckets. */
  #advance(track: DeviceTrack, seconds: number): Rates {
    const previous = track.previous;
    // One read of the counters per tick: what this delta leaves out, the next one counts.
    const current = snapshot(track.metrics, track.spare);
    const deltas = this.#deltaBuckets;
    for (let index = 0; index < BUCKETS; index += 1) deltas[index] = Math.max(0, current.buckets[index]! - previous.buckets[index]!);
    const rates: Rates = {
      iops: round(ratePerSecond(current.commands - previous.commands, seconds), 1),
      readIops: round(ratePerSecond(current.reads - previous.reads, seconds), 1),
      writeIops: round(ratePerSecond(current.writes - previous.writes, seconds), 1),
      readBytesPerSecond: Math.round(ratePerSecond(current.bytesRead - previous.bytesRead, seconds)),
      writtenBytesPerSecond: Math.round(ratePerSecond(current.bytesWritten - previous.bytesWritten, seconds)),
      latencyP50Ms: latencyMs(latencyQuantileMs(deltas, 0.5)),
      latencyP99Ms: latencyMs(latencyQuantileMs(deltas, 0.99)),
    };
    track.previous = current;
    track.spare = previous;
    track.rates.push(rates);
    return rates;
  }

  deviceRates(name: string): Rates {
    return this.#devices.get(name)?.rates.latest ?? ZERO_RATES;
  }

  /** The device's newest `samples` samples; empty for a device not sampled yet. */
  deviceSeries(name: string, samples: number): RateSeries {
    return (this.#devices.get(name)?.rates ?? new RateRings(1)).series(samples, this.#lastSeq);
  }

  get aggregateRates(): Rates {
    return this.#aggregate.latest;
  }

  aggregateSeries(samples: number): RateSeries {
    return this.#aggregate.series(samples, this.#lastSeq);
  }

  processSeries(samples: number): { firstSeq: number; rssBytes: number[]; cpuPercent: number[] } {
    const rss = this.#rss.latest(samples).map((value) => value ?? 0);
    return { firstSeq: this.#lastSeq - rss.length + 1, rssBytes: rss, cpuPercent: this.#cpu.latest(samples).map((value) => value ?? 0) };
  }
}
