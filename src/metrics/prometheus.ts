// Prometheus text exposition format 0.0.4: HELP and TYPE once per family, then samples with
// escaped label values. Built on scrape from the per-device arrays; nothing here runs per command.
import type { RingEngine } from "../ring/engine.ts";
import { ALUA_STATE_CODES } from "../scsi/alua.ts";
import { LATENCY_SAMPLE_EVERY_DEFAULT } from "./accounting-executor.ts";
import { LATENCY_BUCKETS_SECONDS, OPCODE_GROUPS, SENSE_KEY_NAMES, type DeviceMetrics } from "./device-metrics.ts";

/** What a scrape reads of a served device (an AttachedDevice, or a simulated one in tests). */
export interface MetricsDevice {
  readonly info: { readonly deviceName: string };
  readonly metrics: DeviceMetrics;
  readonly engine: Pick<RingEngine, "inFlightCount" | "occupancyBytes" | "cmdrSizeBytes" | "broken" | "counters">;
  /** Its ALUA group as the worker publishes it (device-stats.ts AluaGaugesReader); absent in tests. */
  readonly alua?: AluaGauges;
}

export interface AluaGauges {
  /** undefined: the device has no ALUA groups. */
  readonly groupId: number | undefined;
  readonly stateCode: number;
  /** undefined: the medium has no lock (only rbd has one). */
  readonly ownsMedium: boolean | undefined;
  readonly transitions: number;
}

export interface ApplianceGauges {
  /** Events received by kind (added, removed, reconfig). */
  netlinkEvents: Readonly<Record<string, number>>;
  /** RECONFIG_DEVICE events answered with a refusal. */
  reconfigsVetoed: number;
  netlinkOverflows: number;
  repliesOn: boolean;
  startedAtSeconds: number;
}

export const METRIC_PREFIX = "tcmu_appliance_";

class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string): void {
    this.#lines.push(`# HELP ${METRIC_PREFIX}${name} ${help}`, `# TYPE ${METRIC_PREFIX}${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escapeLabel(text)}"`);
    this.#lines.push(`${METRIC_PREFIX}${name}${pairs.length === 0 ? "" : `{${pairs.join(",")}}`} ${formatValue(value)}`);
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

export function escapeLabel(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  return String(value);
}

export function renderMetrics(devices: readonly MetricsDevice[], gauges: ApplianceGauges): string {
  const out = new Exposition();
  out.family("devices", "gauge", "TCMU devices served by this process.");
  out.sample("devices", {}, devices.length);
  out.family("netlink_replies_enabled", "gauge", "1 while SUPP_KERN_CMD_REPLY is on (the kernel waits for our verdicts).");
  out.sample("netlink_replies_enabled", {}, gauges.repliesOn ? 1 : 0);
  out.family("netlink_events_total", "counter", "TCM-USER netlink events received, by kind.");
  for (const [kind, count] of Object.entries(gauges.netlinkEvents)) out.sample("netlink_events_total", { kind }, count);
  out.family("reconfigs_vetoed_total", "counter", "RECONFIG_DEVICE events refused (the configfs write failed with our errno).");
  out.sample("reconfigs_vetoed_total", {}, gauges.reconfigsVetoed);
  out.family("netlink_overflows_total", "counter", "Times netlink events were lost and a rescan ran.");
  out.sample("netlink_overflows_total", {}, gauges.netlinkOverflows);
  out.family("start_time_seconds", "gauge", "Unix time this process started.");
  out.sample("start_time_seconds", {}, gauges.startedAtSeconds);
  renderCommands(out, devices);
  renderRing(out, devices);
  renderAlua(out, devices);
  return out.text();
}

function renderCommands(out: Exposition, devices: readonly MetricsDevice[]): void {
  out.family("commands_total", "counter", "SCSI commands completed, by opcode group.");
  for (const device of devices) {
    OPCODE_GROUPS.forEach((group, index) => out.sample("commands_total", { device: device.info.deviceName, group }, device.metrics.commandsByGroup[index]!));
  }
  out.family("command_status_total", "counter", "SCSI commands completed, by SAM status.");
  for (const device of devices) {
    device.metrics.statusLabels.forEach((status, index) =>
      out.sample("command_status_total", { device: device.info.deviceName, status }, device.metrics.commandsByStatus[index]!),
    );
  }
  out.family("command_errors_total", "counter", "CHECK CONDITION replies, by sense key.");
  for (const device of devices) {
    device.metrics.errorsBySenseKey.forEach((count, key) => {
      if (count > 0) out.sample("command_errors_total", { device: device.info.deviceName, sense_key: SENSE_KEY_NAMES[key]! }, count);
    });
  }
  out.family("read_bytes_total", "counter", "Bytes returned by successful read commands.");
  for (const device of devices) out.sample("read_bytes_total", { device: device.info.deviceName }, device.metrics.bytesRead);
  out.family("written_bytes_total", "counter", "Bytes accepted by successful write commands.");
  for (const device of devices) out.sample("written_bytes_total", { device: device.info.deviceName }, device.metrics.bytesWritten);
  out.family("command_latency_seconds", "histogram", `Time from dispatch to reply inside the handler, for a sample of commands (one in ${LATENCY_SAMPLE_EVERY_DEFAULT}; commands_total counts them all).`);
  for (const device of devices) {
    const metrics = device.metrics;
    const name = device.info.deviceName;
    let cumulative = 0;
    LATENCY_BUCKETS_SECONDS.forEach((bound, index) => {
      cumulative += metrics.latencyBuckets[index]!;
      out.sample("command_latency_seconds_bucket", { device: name, le: String(bound) }, cumulative);
    });
    cumulative += metrics.latencyBuckets[LATENCY_BUCKETS_SECONDS.length]!;
    out.sample("command_latency_seconds_bucket", { device: name, le: "+Inf" }, cumulative);
    out.sample("command_latency_seconds_sum", { device: name }, metrics.latencySumSeconds);
    out.sample("command_latency_seconds_count", { device: name }, cumulative);
  }
}

function renderRing(out: Exposition, devices: readonly MetricsDevice[]): void {
  out.family("commands_in_flight", "gauge", "Commands dispatched and not yet completed.");
  for (const device of devices) out.sample("commands_in_flight", { device: device.info.deviceName }, device.engine.inFlightCount);
  out.family("ring_occupancy_bytes", "gauge", "Command ring bytes between cmd_tail and cmd_head.");
  for (const device of devices) out.sample("ring_occupancy_bytes", { device: device.info.deviceName }, device.engine.occupancyBytes);
  out.family("ring_size_bytes", "gauge", "Command ring size.");
  for (const device of devices) out.sample("ring_size_bytes", { device: device.info.deviceName }, device.engine.cmdrSizeBytes);
  out.family("ring_broken", "gauge", "1 when the ring held an entry that cannot be parsed (needs action/reset_ring).");
  for (const device of devices) out.sample("ring_broken", { device: device.info.deviceName }, device.engine.broken ? 1 : 0);
  out.family("ring_entries_total", "counter", "Ring entries read, by kind.");
  for (const device of devices) {
    const counters = device.engine.counters;
    const name = device.info.deviceName;
    out.sample("ring_entries_total", { device: name, kind: "cmd" }, counters.commands);
    out.sample("ring_entries_total", { device: name, kind: "pad" }, counters.padEntries);
    out.sample("ring_entries_total", { device: name, kind: "tmr" }, counters.tmrEntries);
    out.sample("ring_entries_total", { device: name, kind: "unknown" }, counters.unknownEntries);
    out.sample("ring_entries_total", { device: name, kind: "malformed" }, counters.malformedEntries);
  }
  out.family("commands_aborted_total", "counter", "Commands a TMR aborted before they ran.");
  for (const device of devices) out.sample("commands_aborted_total", { device: device.info.deviceName }, device.engine.counters.abortedCommands);
  out.family("doorbells_total", "counter", "Doorbell writes (each announces a batch of completions).");
  for (const device of devices) out.sample("doorbells_total", { device: device.info.deviceName }, device.engine.counters.doorbells);
  out.family("ring_resets_total", "counter", "Rings taken over from a dead handler with commands in them (reset, commands retried).");
  for (const device of devices) out.sample("ring_resets_total", { device: device.info.deviceName }, device.metrics.ringResets);
  out.family("backstore_outages_total", "counter", "Times the store's medium went out of reach (a Ceph cluster stopped answering, the client was blocklisted); commands got NOT READY until it served again.");
  for (const device of devices) out.sample("backstore_outages_total", { device: device.info.deviceName }, device.metrics.storeOutages);
}

/**
 * ALUA per device (docs/ha.md): the gateway's own group and its state as a one-hot gauge (one
 * sample per state, 1 for the current one, so dashboards can plot and alert on a label), who
 * holds the medium's lock, and how often the state changed. Devices without ALUA have none.
 */
function renderAlua(out: Exposition, devices: readonly MetricsDevice[]): void {
  const withAlua = devices.filter((device) => device.alua?.groupId !== undefined);
  if (withAlua.length === 0) return;
  out.family("alua_state", "gauge", "1 for this gateway's target port group's current asymmetric access state.");
  for (const device of withAlua) {
    const alua = device.alua!;
    const group = String(alua.groupId);
    for (const [state, code] of Object.entries(ALUA_STATE_CODES)) {
      out.sample("alua_state", { device: device.info.deviceName, group, state }, alua.stateCode === code ? 1 : 0);
    }
  }
  const locked = withAlua.filter((device) => device.alua!.ownsMedium !== undefined);
  if (locked.length > 0) {
    out.family("alua_lock_owned", "gauge", "1 while this gateway holds the medium's exclusive lock (it is the active/optimized one).");
    for (const device of locked) out.sample("alua_lock_owned", { device: device.info.deviceName }, device.alua!.ownsMedium ? 1 : 0);
  }
  out.family("alua_transitions_total", "counter", "Changes of this gateway's ALUA state (lock taken or lost, SET TARGET PORT GROUPS).");
  for (const device of withAlua) out.sample("alua_transitions_total", { device: device.info.deviceName }, device.alua!.transitions);
}
