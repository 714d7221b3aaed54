// Per-device command accounting. Everything is a fixed-size typed array made when the device
// attaches; recording a command is table lookups and increments, no allocation, so it can sit
// on the data path. Rendering (prometheus.ts) reads these arrays on scrape.
import { NO_DATA_IN, SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD, type ScsiCommand } from "../ring/command.ts";

/** Opcode groups, the `group` label of tcmu_appliance_commands_total. */
export const OPCODE_GROUPS = ["read", "write", "verify", "sync", "unmap", "write_same", "compare_and_write", "copy", "other"] as const;
export type OpcodeGroup = (typeof OPCODE_GROUPS)[number];

const GROUP_INDEX = Object.fromEntries(OPCODE_GROUPS.map((name, index) => [name, index])) as Record<OpcodeGroup, number>;

/** Opcode → group index; anything not listed (INQUIRY, READ CAPACITY, MODE SENSE…) is "other". */
export const GROUP_OF_OPCODE: Uint8Array = buildGroupTable({
  read: [0x08, 0x28, 0xa8, 0x88],
  write: [0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0xae, 0x8e],
  verify: [0x2f, 0xaf, 0x8f],
  sync: [0x35, 0x91],
  unmap: [0x42],
  write_same: [0x41, 0x93],
  compare_and_write: [0x89],
  copy: [0x83, 0x84],
});

function buildGroupTable(groups: Partial<Record<OpcodeGroup, number[]>>): Uint8Array {
  const table = new Uint8Array(256).fill(GROUP_INDEX.other);
  for (const [group, opcodes] of Object.entries(groups) as [OpcodeGroup, number[]][]) {
    for (const opcode of opcodes) table[opcode] = GROUP_INDEX[group];
  }
  return table;
}

const READ_GROUP = GROUP_INDEX.read;
const WRITE_GROUP = GROUP_INDEX.write;

/** SPC-4 table 49, the `sense_key` label of tcmu_appliance_command_errors_total. */
export const SENSE_KEY_NAMES = [
  "no_sense",
  "recovered_error",
  "not_ready",
  "medium_error",
  "hardware_error",
  "illegal_request",
  "unit_attention",
  "data_protect",
  "blank_check",
  "vendor_specific",
  "copy_aborted",
  "aborted_command",
  "reserved_0c",
  "volume_overflow",
  "miscompare",
  "completed",
] as const;

/** SAM-5 status codes worth a label; any other status counts as "other". */
export const STATUS_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, "good"],
  [0x02, "check_condition"],
  [0x04, "condition_met"],
  [0x08, "busy"],
  [0x18, "reservation_conflict"],
  [0x28, "task_set_full"],
  [0x30, "aca_active"],
  [0x40, "task_aborted"],
]);
const STATUS_LABELS = [...STATUS_NAMES.values(), "other"];
const STATUS_INDEX = new Uint8Array(256).fill(STATUS_LABELS.length - 1);
for (const [index, status] of [...STATUS_NAMES.keys()].entries()) STATUS_INDEX[status] = index;

/** Upper bounds of the latency histogram, seconds (Prometheus `le`): 50 µs to 2.5 s. */
export const LATENCY_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

const SCALAR_LATENCY_SUM = 0;
const SCALAR_BYTES_READ = 1;
const SCALAR_BYTES_WRITTEN = 2;
const SCALAR_RING_RESETS = 3;
const SCALAR_STORE_OUTAGES = 4;
const SCALARS = 5;
const GROUPS_AT = 0;
const STATUS_AT = GROUPS_AT + OPCODE_GROUPS.length;
const SENSE_AT = STATUS_AT + STATUS_LABELS.length;
const LATENCY_AT = SENSE_AT + SENSE_KEY_NAMES.length;
const SCALARS_AT = LATENCY_AT + LATENCY_BUCKETS_SECONDS.length + 1;
const METRIC_WORDS = SCALARS_AT + SCALARS;

/**
 * The counters live in one buffer, so a data-plane worker can record into a SharedArrayBuffer
 * that the control plane's /metrics reads without stopping it (plain 8-byte stores: a reader
 * sees each value whole, possibly one command behind).
 */
export class DeviceMetrics {
  static readonly BYTES = METRIC_WORDS * 8;
  /** Commands completed, by OPCODE_GROUPS index. */
  readonly commandsByGroup: Float64Array;
  /** Completed commands by final status, indexed like statusLabels. */
  readonly commandsByStatus: Float64Array;
  /** CHECK CONDITION replies by sense key (0..15). */
  readonly errorsBySenseKey: Float64Array;
  /** Latency histogram of the timed commands, one count per bucket plus +Inf at the end (not cumulative). */
  readonly latencyBuckets: Float64Array;
  readonly #scalars: Float64Array;

  /** Over `buffer` from `byteOffset` (DeviceMetrics.BYTES of it), or over memory of its own. */
  constructor(buffer: ArrayBufferLike = new ArrayBuffer(DeviceMetrics.BYTES), byteOffset = 0) {
    const words = new Float64Array(buffer, byteOffset, METRIC_WORDS);
    this.commandsByGroup = words.subarray(GROUPS_AT, STATUS_AT);
    this.commandsByStatus = words.subarray(STATUS_AT, SENSE_AT);
    this.errorsBySenseKey = words.subarray(SENSE_AT, LATENCY_AT);
    this.latencyBuckets = words.subarray(LATENCY_AT, SCALARS_AT);
    this.#scalars = words.subarray(SCALARS_AT, METRIC_WORDS);
  }

  get latencySumSeconds(): number {
    return this.#scalars[SCALAR_LATENCY_SUM]!;
  }

  set latencySumSeconds(value: number) {
    this.#scalars[SCALAR_LATENCY_SUM] = value;
  }

  get bytesRead(): number {
    return this.#scalars[SCALAR_BYTES_READ]!;
  }

  set bytesRead(value: number) {
    this.#scalars[SCALAR_BYTES_READ] = value;
  }

  get bytesWritten(): number {
    return this.#scalars[SCALAR_BYTES_WRITTEN]!;
  }

  set bytesWritten(value: number) {
    this.#scalars[SCALAR_BYTES_WRITTEN] = value;
  }

  /** Rings found holding a dead predecessor's commands and reset at attach (see ring-recovery.ts). */
  get ringResets(): number {
    return this.#scalars[SCALAR_RING_RESETS]!;
  }

  set ringResets(value: number) {
    this.#scalars[SCALAR_RING_RESETS] = value;
  }

  /** Times the store's medium went out of reach (a cluster stopped answering, a blocklisted client). */
  get storeOutages(): number {
    return this.#scalars[SCALAR_STORE_OUTAGES]!;
  }

  set storeOutages(value: number) {
    this.#scalars[SCALAR_STORE_OUTAGES] = value;
  }

  get statusLabels(): readonly string[] {
    return STATUS_LABELS;
  }

  /** Accounts one completed command; `latencySeconds` from dispatch to reply, NaN when not timed. */
  record(command: ScsiCommand, latencySeconds: number): void {
    const group = GROUP_OF_OPCODE[command.opcode]!;
    this.commandsByGroup[group]! += 1;
    const status = command.status;
    this.commandsByStatus[STATUS_INDEX[status]!]! += 1;
    if (status === SAM_STAT_GOOD) {
      if (group === READ_GROUP && command.dataInBytes !== NO_DATA_IN) this.bytesRead += command.dataInBytes;
      else if (group === WRITE_GROUP) this.bytesWritten += command.data.totalBytes;
    } else if (status === SAM_STAT_CHECK_CONDITION) {
      this.errorsBySenseKey[senseKeyOf(command.sense)]! += 1;
    }
    if (Number.isNaN(latencySeconds)) return;
    this.latencySumSeconds += latencySeconds;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS_SECONDS.length && latencySeconds > LATENCY_BUCKETS_SECONDS[bucket]!) bucket += 1;
    this.latencyBuckets[bucket]! += 1;
  }

  get completedCount(): number {
    let total = 0;
    for (const count of this.commandsByGroup) total += count;
    return total;
  }
}

/** Sense key from fixed (0x70/0x71: byte 2) or descriptor (0x72/0x73: byte 1) format sense. */
export function senseKeyOf(sense: Uint8Array): number {
  const responseCode = sense[0]! & 0x7f;
  return (responseCode >= 0x72 ? sense[1]! : sense[2]!) & 0x0f;
}
