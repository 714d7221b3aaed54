import { afterEach, describe, expect, test } from "bun:test";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import { AccountingExecutor, LATENCY_SAMPLE_EVERY_DEFAULT } from "../../src/metrics/accounting-executor.ts";
import { DeviceMetrics, GROUP_OF_OPCODE, OPCODE_GROUPS, senseKeyOf } from "../../src/metrics/device-metrics.ts";
import { startMetricsServer } from "../../src/metrics/http.ts";
import { escapeLabel, renderMetrics, type MetricsDevice } from "../../src/metrics/prometheus.ts";
import { SAM_STAT_GOOD, type ScsiCommand } from "../../src/ring/command.ts";
import { RingDriver } from "../../src/ring/driver.ts";
import type { CommandExecutor } from "../../src/ring/engine.ts";
import { RingEngine } from "../../src/ring/engine.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../../src/scsi/device.ts";
import { KernelSim } from "../../src/sim/kernel-sim.ts";
import * as cdbs from "../support/cdbs.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * An engine over the kernel simulator with the accounting executor in front of a RAM unit;
 * every command timed unless `latencySampleEvery` says otherwise.
 */
function servedSimDevice(name: string, latencySampleEvery = 1) {
  const sim = new KernelSim();
  const backstore = new RamBackstore(16 * 1024 * 1024);
  const scsi = new ScsiDevice(backstore, {
    name,
    blockSizeBytes: 512,
    sizeBytes: backstore.sizeBytes,
    maxTransferBlocks: 128,
    writeCacheEnabled: false,
    identity: { ...DEFAULT_IDENTITY, unitSerial: `${name}-serial` },
  });
  const metrics = new DeviceMetrics();
  const executor = new AccountingExecutor(scsi, metrics, latencySampleEvery);
  const engine = new RingEngine(sim.ring, sim.doorbell, executor);
  const driver = new RingDriver(engine);
  sim.onInterrupt = driver.kick;
  cleanups.push(async () => {
    await engine.whenIdle();
    scsi.close();
    backstore.close();
    sim.close();
  });
  const device: MetricsDevice = { info: { deviceName: name }, metrics, engine };
  return { sim, device, metrics, executor };
}

/** Prometheus text → "name{labels}" → value, checking the HELP/TYPE structure on the way. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    if (line.startsWith("# HELP ")) continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      expect(["counter", "gauge", "histogram"]).toContain(type!);
      typed.add(name!);
      continue;
    }
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not an exposition line: ${line}`);
    const family = match[1]!.replace(/_(bucket|sum|count)$/, "");
    if (!typed.has(match[1]!) && !typed.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    samples.set(`${match[1]}${match[2] ?? ""}`, Number(match[3]));
  }
  return samples;
}

describe("DeviceMetrics", () => {
  test("opcodes map to their groups; everything else is other", () => {
    const group = (opcode: number) => OPCODE_GROUPS[GROUP_OF_OPCODE[opcode]!];
    expect([group(0x28), group(0x8a), group(0x35), group(0x42), group(0x93), group(0x89), group(0x83), group(0x12), group(0x25)]).toEqual([
      "read",
      "write",
      "sync",
      "unmap",
      "write_same",
      "compare_and_write",
      "copy",
      "other",
      "other",
    ]);
  });

  test("senseKeyOf() reads fixed and descriptor format sense", () => {
    expect(senseKeyOf(Uint8Array.of(0x70, 0, 0x05))).toBe(5);
    expect(senseKeyOf(Uint8Array.of(0xf0, 0, 0x03))).toBe(3);
    expect(senseKeyOf(Uint8Array.of(0x72, 0x06, 0x2a))).toBe(6);
  });
});

test("the accounting executor counts groups, bytes, sense keys and latency without changing replies", async () => {
  const { sim, metrics } = servedSimDevice("m0");
  const data = cdbs.patternBytes(8192, 3);
  expect((await sim.submit(cdbs.write10(0, 16), { dataOut: data })).status).toBe(SAM_STAT_GOOD);
  const read = await sim.submit(cdbs.read10(0, 16), { dataInBytes: 8192 });
  expect(read.dataIn).toEqual(data);
  expect((await sim.submit(cdbs.inquiry(96), { dataInBytes: 96 })).status).toBe(SAM_STAT_GOOD);
  const beyond = await sim.submit(cdbs.read10(0x10_0000, 1), { dataInBytes: 512 });
  expect(beyond.status).toBe(2);
  const unknown = await sim.submit(Uint8Array.of(0x02, 0, 0, 0, 0, 0), {});
  expect(unknown.status).toBe(2);
  expect(metrics.commandsByGroup[OPCODE_GROUPS.indexOf("write")]).toBe(1);
  expect(metrics.commandsByGroup[OPCODE_GROUPS.indexOf("read")]).toBe(2);
  expect(metrics.commandsByGroup[OPCODE_GROUPS.indexOf("other")]).toBe(2);
  expect(metrics.bytesWritten).toBe(8192);
  expect(metrics.bytesRead).toBe(8192);
  expect(metrics.errorsBySenseKey[5]).toBe(2);
  expect(metrics.completedCount).toBe(5);
  expect(metrics.latencyBuckets.reduce((sum, count) => sum + count, 0)).toBe(5);
});

test("by default one command in 16 is timed, the first included, and every command is counted", async () => {
  const { sim, metrics } = servedSimDevice("sampled", LATENCY_SAMPLE_EVERY_DEFAULT);
  const commands = 2 * LATENCY_SAMPLE_EVERY_DEFAULT + 1;
  for (let index = 0; index < commands; index += 1) {
    expect((await sim.submit(cdbs.read10(index, 1), { dataInBytes: 512 })).status).toBe(SAM_STAT_GOOD);
  }
  expect(metrics.completedCount).toBe(commands);
  expect(metrics.latencyBuckets.reduce((sum, count) => sum + count, 0)).toBe(3);
  expect(Number.isFinite(metrics.latencySumSeconds) && metrics.latencySumSeconds > 0).toBe(true);
  expect(() => new AccountingExecutor({ execute: () => {}, failInternally: () => {} }, metrics, 0)).toThrow("latencySampleEvery");
});

test("quiesce() holds new commands until resume() and waits for running ones", async () => {
  const metrics = new DeviceMetrics();
  const order: string[] = [];
  let finishSlow: () => void = () => {};
  const target: CommandExecutor = {
    execute: (command: ScsiCommand) => {
      order.push(`run ${command.cmdId}`);
      if (command.cmdId === 1) return new Promise<void>((resolve) => (finishSlow = resolve));
    },
    failInternally: () => {},
  };
  const executor = new AccountingExecutor(target, metrics);
  const command = (cmdId: number) => ({ cmdId, slotIndex: cmdId, opcode: 0x28, cdb: Uint8Array.of(0x28), status: 0, dataInBytes: -1, data: { totalBytes: 0 }, sense: new Uint8Array(96) }) as unknown as ScsiCommand;
  const slow = executor.execute(command(1));
  let drained = false;
  const quiesced = executor.quiesce().then(() => (drained = true));
  const held = executor.execute(command(2));
  await Bun.sleep(5);
  expect(drained).toBe(false);
  expect(order).toEqual(["run 1"]);
  finishSlow();
  await slow;
  await quiesced;
  expect(order).toEqual(["run 1"]);
  const replacement: CommandExecutor = { execute: (c) => void order.push(`new ${c.cmdId}`), failInternally: () => {} };
  executor.resume(replacement);
  await held;
  expect(order).toEqual(["run 1", "new 2"]);
  expect(metrics.completedCount).toBe(2);
});

test("/metrics serves parseable Prometheus text and /healthz reports health", async () => {
  const first = servedSimDevice('disk"0');
  const second = servedSimDevice("disk1");
  await first.sim.submit(cdbs.write10(8, 8), { dataOut: cdbs.patternBytes(4096, 1) });
  await first.sim.submit(cdbs.read10(8, 8), { dataInBytes: 4096 });
  await second.sim.submit(cdbs.read10(0, 1), { dataInBytes: 512 });
  let healthy = true;
  const server = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, {
    metricsText: () => renderMetrics([first.device, second.device], { netlinkEvents: { added: 2, removed: 0, reconfig: 1 }, reconfigsVetoed: 1, netlinkOverflows: 0, repliesOn: true, startedAtSeconds: 1700000000 }),
    health: () => ({ healthy, devices: 2 }),
  });
  cleanups.push(() => server.stop(true));
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const samples = parseExposition(await response.text());
  const label = escapeLabel('disk"0');
  expect(samples.get("tcmu_appliance_devices")).toBe(2);
  expect(samples.get("tcmu_appliance_netlink_replies_enabled")).toBe(1);
  expect(samples.get('tcmu_appliance_netlink_events_total{kind="added"}')).toBe(2);
  expect(samples.get("tcmu_appliance_reconfigs_vetoed_total")).toBe(1);
  expect(samples.get(`tcmu_appliance_commands_total{device="${label}",group="read"}`)).toBe(1);
  expect(samples.get(`tcmu_appliance_commands_total{device="${label}",group="write"}`)).toBe(1);
  expect(samples.get(`tcmu_appliance_written_bytes_total{device="${label}"}`)).toBe(4096);
  expect(samples.get(`tcmu_appliance_read_bytes_total{device="${label}"}`)).toBe(4096);
  expect(samples.get('tcmu_appliance_read_bytes_total{device="disk1"}')).toBe(512);
  expect(samples.get(`tcmu_appliance_command_status_total{device="${label}",status="good"}`)).toBe(2);
  expect(samples.get(`tcmu_appliance_command_latency_seconds_count{device="${label}"}`)).toBe(2);
  expect(samples.get(`tcmu_appliance_command_latency_seconds_bucket{device="${label}",le="+Inf"}`)).toBe(2);
  expect(samples.get(`tcmu_appliance_commands_in_flight{device="${label}"}`)).toBe(0);
  expect(samples.get(`tcmu_appliance_ring_occupancy_bytes{device="${label}"}`)).toBe(0);
  expect(samples.get(`tcmu_appliance_ring_size_bytes{device="${label}"}`)).toBeGreaterThan(0);
  // Buckets are cumulative: never decreasing towards +Inf.
  const buckets = [...samples].filter(([key]) => key.startsWith(`tcmu_appliance_command_latency_seconds_bucket{device="${label}"`)).map(([, value]) => value);
  expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
  const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ healthy: true, devices: 2 });
  healthy = false;
  expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(503);
  expect((await fetch(`http://127.0.0.1:${server.port}/nope`)).status).toBe(404);
});

test("POST /fault-injection exists only when serve asked for it, and names the device and the kind", async () => {
  const plain = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, { metricsText: () => "", health: () => ({ healthy: true }) });
  cleanups.push(() => plain.stop(true));
  expect((await fetch(`http://127.0.0.1:${plain.port}/fault-injection/disk0`, { method: "POST" })).status).toBe(405);

  const injected: string[] = [];
  const testing = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, {
    metricsText: () => "",
    health: () => ({ healthy: true }),
    injectFault: async (name, kind) => {
      if (name !== "disk0") return false;
      injected.push(kind);
      return true;
    },
  });
  cleanups.push(() => testing.stop(true));
  const post = (path: string) => fetch(`http://127.0.0.1:${testing.port}${path}`, { method: "POST" });
  expect((await post("/fault-injection/disk0?kind=worker")).status).toBe(202);
  expect((await post("/fault-injection/disk0")).status).toBe(202);
  expect((await post("/fault-injection/disk1")).status).toBe(404);
  expect((await post("/fault-injection/disk0?kind=everything")).status).toBe(400);
  expect(injected).toEqual(["worker", "data-path"]);
  // Reading stays GET-only.
  expect((await fetch(`http://127.0.0.1:${testing.port}/fault-injection/disk0`)).status).toBe(404);
});
