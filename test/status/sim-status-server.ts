// A metrics listener with a status provider over real simulated devices (worker threads, the
// shared stats memory, the ring), each kept busy by a load loop: what the API, CLI and browser
// tests look at. The devices' load differs (queue depth, read share, transfer size, pauses) so
// their numbers differ too.
import type { Server } from "bun";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { startMetricsServer } from "../../src/metrics/http.ts";
import * as uapi from "../../src/ring/uapi.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import { RecentWarnings } from "../../src/status/recent-warnings.ts";
import { StatusProvider, type StatusDeviceSource } from "../../src/status/status-provider.ts";
import * as cdbs from "../support/cdbs.ts";

export interface LoadProfile {
  queueDepth: number;
  /** Of ten commands, how many are reads. */
  readsInTen: number;
  blocks: number;
  /** Pause after each queue-depth's worth of commands, to keep the CPU for others (a browser). */
  pauseMs: number;
}

export const PROFILES: readonly LoadProfile[] = [
  { queueDepth: 8, readsInTen: 7, blocks: 8, pauseMs: 2 },
  { queueDepth: 4, readsInTen: 2, blocks: 64, pauseMs: 3 },
  { queueDepth: 16, readsInTen: 5, blocks: 16, pauseMs: 4 },
  { queueDepth: 2, readsInTen: 9, blocks: 128, pauseMs: 5 },
];

const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const DEVICE_BYTES = 16 * 1024 * 1024;

export interface SimStatusServer {
  server: Server<undefined>;
  /** "127.0.0.1:PORT", as --metrics-listen takes it. */
  listen: string;
  baseUrl: string;
  names: string[];
  devices: Map<string, SimWorkerDevice>;
  provider: StatusProvider;
  warnings: RecentWarnings;
  /** Stops the device's load, then posts a ring entry whose length is impossible. */
  breakRing(name: string): Promise<void>;
  /** START STOP UNIT with START=0: the unit reports itself stopped. */
  stopUnit(name: string): Promise<void>;
  close(): Promise<void>;
}

export function simStatusDevice(name: string, device: SimWorkerDevice): StatusDeviceSource {
  return {
    name,
    uio: "-",
    backstoreKind: device.store.kind,
    backstoreDescription: device.store.description,
    sizeBytes: device.sizeBytes,
    blockSizeBytes: device.blockSizeBytes,
    metrics: device.metrics,
    engine: device.engine,
    unit: device.unit,
    get detaching() {
      return device.released.length > 0;
    },
  };
}

async function runLoad(device: SimWorkerDevice, profile: LoadProfile, running: () => boolean): Promise<void> {
  const bytes = profile.blocks * 512;
  const data = cdbs.patternBytes(bytes, profile.blocks);
  const lbas = DEVICE_BYTES / 512 - profile.blocks;
  const inFlight = new Set<Promise<unknown>>();
  for (let n = 0; running(); n += 1) {
    const lba = (n * 7919 * profile.blocks) % lbas;
    const command = n % 10 < profile.readsInTen
      ? device.submit(cdbs.read10(lba, profile.blocks), { dataInBytes: bytes })
      : device.submit(cdbs.write10(lba, profile.blocks), { dataOut: data });
    const settled: Promise<unknown> = command.then(
      () => inFlight.delete(settled),
      () => inFlight.delete(settled),
    );
    inFlight.add(settled);
    if (inFlight.size >= profile.queueDepth) await Promise.race(inFlight);
    // The pause swings between one and three times the profile's, so the charts have a shape.
    if (n % profile.queueDepth === 0) await Bun.sleep(profile.pauseMs * (1 + Math.floor(Date.now() / 1500 + profile.blocks) % 3));
  }
  await Promise.all(inFlight);
}

export async function startSimStatusServer(options: { devices: number; intervalMs?: number; capacity?: number; threads?: number }): Promise<SimStatusServer> {
  const warnings = new RecentWarnings();
  const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: options.threads ?? 2 }, warnings.wrap(silent, "ring"));
  const names = Array.from({ length: options.devices }, (_, index) => `disk${index}`);
  const devices = new Map<string, SimWorkerDevice>();
  for (const name of names) devices.set(name, await SimWorkerDevice.attach(pool, { name, sizeBytes: DEVICE_BYTES, sim: { dataBlockCount: 1024 } }));
  const loadOn = new Map(names.map((name) => [name, true]));
  const loads = new Map(names.map((name, index) => [name, runLoad(devices.get(name)!, PROFILES[index % PROFILES.length]!, () => loadOn.get(name) === true)]));
  const exports = new Map(names.map((name, index) => [name, index % 2 === 0 ? [`loop naa.50014050000000${index.toString(16).padStart(2, "0")}`] : []]));
  const provider = new StatusProvider({
    devices: () => names.map((name) => simStatusDevice(name, devices.get(name)!)),
    exports: () => exports,
    serve: () => ({ stopping: false, netlink: true }),
    warnings,
    startedAtMs: Date.now(),
    intervalMs: options.intervalMs ?? 250,
    capacity: options.capacity,
  });
  provider.start();
  const server = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, {
    metricsText: () => "",
    health: () => ({ healthy: true }),
    status: (query) => provider.report(query),
  });
  const listen = `127.0.0.1:${server.port}`;
  const stopLoad = async (name: string) => {
    loadOn.set(name, false);
    await loads.get(name);
  };
  return {
    server,
    listen,
    baseUrl: `http://${listen}`,
    names,
    devices,
    provider,
    warnings,
    async breakRing(name) {
      await stopLoad(name);
      const device = devices.get(name)!;
      void device.sim.submitRaw(cdbs.TEST_UNIT_READY, {}, (entry, view) => view.setUint32(entry, uapi.tcmuHdrLenOp(1 << 20, uapi.TCMU_OP_CMD), true)).catch(() => {});
      for (let waited = 0; !device.engine.broken && waited < 5000; waited += 5) await Bun.sleep(5);
    },
    async stopUnit(name) {
      await stopLoad(name);
      await devices.get(name)!.submit([0x1b, 0, 0, 0, 0, 0]);
      for (let waited = 0; !devices.get(name)!.unit.stopped && waited < 5000; waited += 5) await Bun.sleep(5);
    },
    async close() {
      provider.stop();
      await Promise.all(names.map(stopLoad));
      await server.stop(true);
      for (const device of devices.values()) await device.detach();
      pool.stop();
    },
  };
}
