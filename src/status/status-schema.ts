// The shape of GET /api/status: what the status page, `status --json` and `top` read. The zod
// schema is the contract: serve's tests validate what it sends with it, and the CLI parses
// responses with it, so a serve and a CLI of different versions fail loudly, not silently.
import { z } from "zod";

export const STATUS_FORMAT_VERSION = 1;

/** How long the per-second series reach back: five minutes of one-second samples. */
export const STATUS_HISTORY_SAMPLES = 300;
/** ?window= when absent: enough for a sparkline without sending the whole five minutes. */
export const DEFAULT_STATUS_WINDOW_SECONDS = 60;

/**
 * served: serving commands. stopped: a START STOP UNIT stopped the unit (medium access gets
 * NOT READY until it is started again). broken: the ring held an entry that cannot be parsed;
 * the device serves nothing until action/reset_ring. stopping: being detached (serve stops,
 * the device was removed, or its worker let go after a fault and it is attached again).
 */
export const DEVICE_STATES = ["served", "stopped", "broken", "stopping"] as const;
export const DeviceStateSchema = z.enum(DEVICE_STATES);

/** Query of GET /api/status: `window` seconds of series per device (0: only the current rates). */
export const StatusQuerySchema = z.object({
  windowSeconds: z.coerce.number("must be a number of seconds").int("must be a whole number of seconds").min(0).max(STATUS_HISTORY_SAMPLES),
});

const count = z.number().nonnegative();
/** null where the second held no timed command (one in 16 is timed). */
const latencyMs = z.number().nonnegative().nullable();

/** One second's rates; a device's `rates` is its latest sample. */
export const RatesSchema = z.object({
  /** Every completed command (reads, writes, TEST UNIT READY, SYNCHRONIZE CACHE…) per second. */
  iops: count,
  readIops: count,
  writeIops: count,
  readBytesPerSecond: count,
  writtenBytesPerSecond: count,
  latencyP50Ms: latencyMs,
  latencyP99Ms: latencyMs,
});

/**
 * The same fields, one array element per sample, oldest first; the sample at index i has
 * sequence number firstSeq + i (history.lastSeq is the newest, history.intervalMs apart).
 */
export const RateSeriesSchema = z
  .object({
    firstSeq: z.number().int().min(1),
    iops: z.array(count),
    readIops: z.array(count),
    writeIops: z.array(count),
    readBytesPerSecond: z.array(count),
    writtenBytesPerSecond: z.array(count),
    latencyP50Ms: z.array(latencyMs),
    latencyP99Ms: z.array(latencyMs),
  })
  .refine((series) => new Set(Object.values(series).filter(Array.isArray).map((values) => values.length)).size === 1, "series arrays differ in length");

export const DeviceTotalsSchema = z.object({
  commands: count,
  readCommands: count,
  writeCommands: count,
  readBytes: count,
  writtenBytes: count,
  /** CHECK CONDITION replies. */
  errors: count,
  /** Rings found holding a dead predecessor's commands and reset at attach. */
  ringResets: count,
});

export const DeviceStatusSchema = z.object({
  name: z.string(),
  /** "uio3"; "-" where there is none (the simulator). */
  uio: z.string(),
  backstore: z.object({ kind: z.string(), description: z.string() }),
  sizeBytes: count,
  blockSizeBytes: z.number().int().nonnegative(),
  state: DeviceStateSchema,
  writeCacheEnabled: z.boolean(),
  /** "loop naa.…", "iscsi iqn.… 0.0.0.0:3260 (chap)": what tcmu-appliance exported it as. */
  exports: z.array(z.string()),
  /** Commands dispatched and not completed: the queue depth in use. */
  inFlight: count,
  totals: DeviceTotalsSchema,
  rates: RatesSchema,
  series: RateSeriesSchema,
});

export const ProcessStatusSchema = z.object({
  pid: z.number().int().positive(),
  rssBytes: count,
  /** CPU time of all threads over the last interval, in percent of one core (can pass 100). */
  cpuPercent: count,
  series: z.object({ firstSeq: z.number().int().min(1), rssBytes: z.array(count), cpuPercent: z.array(count) }),
});

export const WarningSchema = z.object({
  time: z.iso.datetime(),
  level: z.enum(["warn", "error"]),
  /** Which of serve's logs said it: "serve" or "ring". */
  source: z.string(),
  message: z.string(),
});

export const StatusReportSchema = z.object({
  version: z.literal(STATUS_FORMAT_VERSION),
  generatedAt: z.iso.datetime(),
  serve: z.object({
    startedAt: z.iso.datetime(),
    uptimeSeconds: count,
    stopping: z.boolean(),
    netlink: z.boolean(),
  }),
  history: z.object({
    intervalMs: z.number().int().positive(),
    capacity: z.number().int().positive(),
    /** The newest sample's sequence number; 0 before the first one. */
    lastSeq: z.number().int().min(0),
    windowSeconds: z.number().int().min(0),
  }),
  process: ProcessStatusSchema,
  /** Over all devices: rates summed, latency from their histograms merged. */
  aggregate: z.object({ rates: RatesSchema, series: RateSeriesSchema }),
  devices: z.array(DeviceStatusSchema),
  /** The latest warn/error lines of serve's log, oldest first. */
  warnings: z.array(WarningSchema),
});

export type DeviceState = z.infer<typeof DeviceStateSchema>;
export type StatusQuery = z.infer<typeof StatusQuerySchema>;
export type Rates = z.infer<typeof RatesSchema>;
export type RateSeries = z.infer<typeof RateSeriesSchema>;
export type DeviceTotals = z.infer<typeof DeviceTotalsSchema>;
export type DeviceStatus = z.infer<typeof DeviceStatusSchema>;
export type ProcessStatus = z.infer<typeof ProcessStatusSchema>;
export type StatusWarning = z.infer<typeof WarningSchema>;
export type StatusReport = z.infer<typeof StatusReportSchema>;

/** The fields of Rates in a fixed order (the history keeps one ring per field). */
export const RATE_FIELDS = ["iops", "readIops", "writeIops", "readBytesPerSecond", "writtenBytesPerSecond", "latencyP50Ms", "latencyP99Ms"] as const satisfies readonly (keyof Rates)[];
export type RateField = (typeof RATE_FIELDS)[number];
