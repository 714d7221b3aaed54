// `bench --devices N --threads M,…`: N simulated RAM devices served by data-plane workers, all
// driven at once (4 KiB random reads, QD32 each), once per thread count, so aggregate
// commands/s can be compared across thread counts in one run. The simulated initiators all run
// on this (main) thread, which bounds what the table can show on a machine with few cores.
import { DataPlanePool } from "../data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../data-plane/settings.ts";
import { SimWorkerDevice } from "../sim/sim-worker-device.ts";
import { runSimBench } from "./sim-bench.ts";

export interface ScalingOptions {
  devices: number;
  threads: number[];
  seconds: number;
  queueDepth: number;
  ioBytes: number;
}

export interface ScalingResult {
  threads: number;
  devices: number;
  iops: number;
  worstP99Us: number;
}

const DEVICE_BYTES = 16 * 1024 * 1024;
const silent = { info: () => {}, warn: () => {}, error: () => {} };

export async function runScalingBench(options: ScalingOptions): Promise<ScalingResult[]> {
  const results: ScalingResult[] = [];
  for (const threads of options.threads) {
    const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads }, silent);
    const devices: SimWorkerDevice[] = [];
    try {
      for (let index = 0; index < options.devices; index += 1) {
        devices.push(await SimWorkerDevice.attach(pool, { name: `bench${index}`, sizeBytes: DEVICE_BYTES, sim: { ringAreaBytes: 1024 * 1024, dataBlockCount: 4096 } }));
      }
      const runs = await Promise.all(
        devices.map((device, index) =>
          runSimBench({ label: device.store.kind, device, ioBytes: options.ioBytes, queueDepth: options.queueDepth, pattern: "rand", operation: "read", durationMs: options.seconds * 1000, seed: index + 1 }),
        ),
      );
      results.push({
        threads: pool.workers.length,
        devices: options.devices,
        iops: runs.reduce((sum, run) => sum + run.iops, 0),
        worstP99Us: Math.max(...runs.map((run) => run.latencyP99Us)),
      });
    } finally {
      for (const device of devices) await device.detach();
      pool.stop();
    }
  }
  return results;
}

export function formatScaling(results: readonly ScalingResult[]): string {
  const lines = ["threads  devices  aggregate IOPS  worst p99 µs"];
  for (const result of results) {
    lines.push(`${String(result.threads).padStart(7)}  ${String(result.devices).padStart(7)}  ${result.iops.toFixed(0).padStart(14)}  ${result.worstP99Us.toFixed(1).padStart(12)}`);
  }
  return lines.join("\n");
}
