// What serve hands the metrics listener for GET /api/status: it samples the devices' counters
// and the process once an interval into a StatusHistory, and builds the report on request.
// It knows devices only through StatusDeviceSource, so the tests feed it simulated devices
// and serve feeds it its attached ones (attachedStatusDevice).
import type { RingGauges, UnitState } from "../data-plane/device-stats.ts";
import { OPCODE_GROUPS } from "../metrics/device-metrics.ts";
import { ProcessSampler } from "./process-sampler.ts";
import type { RecentWarnings } from "./recent-warnings.ts";
import { StatusHistory, type HistoryDevice } from "./status-history.ts";
import {
  DEFAULT_STATUS_WINDOW_SECONDS,
  STATUS_FORMAT_VERSION,
  STATUS_HISTORY_SAMPLES,
  type DeviceState,
  type DeviceStatus,
  type DeviceTotals,
  type StatusQuery,
  type StatusReport,
} from "./status-schema.ts";

export const STATUS_INTERVAL_MS = 1000;

/** What a report reads of a served device (an AttachedDevice, or a simulated one in tests). */
export interface StatusDeviceSource extends HistoryDevice {
  readonly uio: string;
  readonly backstoreKind: string;
  readonly backstoreDescription: string;
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly engine: Pick<RingGauges, "inFlightCount" | "broken">;
  readonly unit: Pick<UnitState, "stopped" | "writeCacheEnabled">;
  /** Being detached, or released by its worker (a fault) and about to be attached again. */
  readonly detaching: boolean;
}

export interface StatusProviderOptions {
  devices(): readonly StatusDeviceSource[];
  /** Device name → how it is exported; read per report, not per tick (serve reads a file). */
  exports?(): ReadonlyMap<string, readonly string[]>;
  serve(): { stopping: boolean; netlink: boolean };
  warnings: RecentWarnings;
  startedAtMs: number;
  /** Sampling interval; tests shorten it. Rates are per second whatever it is. */
  intervalMs?: number;
  capacity?: number;
}

const READ_GROUP = OPCODE_GROUPS.indexOf("read");
const WRITE_GROUP = OPCODE_GROUPS.indexOf("write");
const byName = new Intl.Collator("en", { numeric: true });

export function deviceState(device: StatusDeviceSource, serveStopping: boolean): DeviceState {
  if (device.engine.broken) return "broken";
  if (device.detaching || serveStopping) return "stopping";
  return device.unit.stopped ? "stopped" : "served";
}

function totalsOf(device: StatusDeviceSource): DeviceTotals {
  const metrics = device.metrics;
  let errors = 0;
  for (const count of metrics.errorsBySenseKey) errors += count;
  return {
    commands: metrics.completedCount,
    readCommands: metrics.commandsByGroup[READ_GROUP]!,
    writeCommands: metrics.commandsByGroup[WRITE_GROUP]!,
    readBytes: metrics.bytesRead,
    writtenBytes: metrics.bytesWritten,
    errors,
    ringResets: metrics.ringResets,
  };
}

export class StatusProvider {
  readonly intervalMs: number;
  readonly history: StatusHistory;
  readonly #options: StatusProviderOptions;
  readonly #process: ProcessSampler;
  #timer: ReturnType<typeof setInterval> | undefined;
  #latestProcess = { rssBytes: process.memoryUsage.rss(), cpuPercent: 0 };

  constructor(options: StatusProviderOptions) {
    this.#options = options;
    this.intervalMs = options.intervalMs ?? STATUS_INTERVAL_MS;
    this.history = new StatusHistory(options.capacity ?? STATUS_HISTORY_SAMPLES);
    this.#process = new ProcessSampler(Date.now());
  }

  /** Takes the baseline now, then samples every interval (the timer does not hold the process up). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.tick();
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  tick(nowMs = Date.now()): void {
    this.#latestProcess = this.#process.sample(nowMs);
    this.history.sample(this.#options.devices(), nowMs, this.#latestProcess);
  }

  report(query: Partial<StatusQuery> = {}): StatusReport {
    const nowMs = Date.now();
    const history = this.history;
    const windowSeconds = query.windowSeconds ?? DEFAULT_STATUS_WINDOW_SECONDS;
    const samples = Math.min(history.capacity, Math.ceil((windowSeconds * 1000) / this.intervalMs));
    const serve = this.#options.serve();
    const exports = this.#options.exports?.() ?? new Map<string, readonly string[]>();
    const devices: DeviceStatus[] = [...this.#options.devices()]
      .sort((left, right) => byName.compare(left.name, right.name))
      .map((device) => ({
        name: device.name,
        uio: device.uio,
        backstore: { kind: device.backstoreKind, description: device.backstoreDescription },
        sizeBytes: device.sizeBytes,
        blockSizeBytes: device.blockSizeBytes,
        state: deviceState(device, serve.stopping),
        writeCacheEnabled: device.unit.writeCacheEnabled,
        exports: [...(exports.get(device.name) ?? [])],
        inFlight: device.engine.inFlightCount,
        totals: totalsOf(device),
        rates: history.deviceRates(device.name),
        series: history.deviceSeries(device.name, samples),
      }));
    return {
      version: STATUS_FORMAT_VERSION,
      generatedAt: new Date(nowMs).toISOString(),
      serve: {
        startedAt: new Date(this.#options.startedAtMs).toISOString(),
        uptimeSeconds: Math.max(0, Math.round((nowMs - this.#options.startedAtMs) / 100) / 10),
        stopping: serve.stopping,
        netlink: serve.netlink,
      },
      history: { intervalMs: this.intervalMs, capacity: history.capacity, lastSeq: history.lastSeq, windowSeconds },
      process: { pid: process.pid, ...this.#latestProcess, cpuPercent: Math.round(this.#latestProcess.cpuPercent * 10) / 10, series: history.processSeries(samples) },
      aggregate: { rates: history.aggregateRates, series: history.aggregateSeries(samples) },
      devices,
      warnings: [...this.#options.warnings.entries],
    };
  }
}
