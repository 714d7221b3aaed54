// `bench --isolation`: what a stalled store costs the other devices. A RAM device on one worker
// is timed at queue depth 1 alone, then again while a neighbour on the other worker reads from
// a store that blocks its thread STALL_MS per read (src/bench-stalling-store.ts). The issue's
// target: the fast device's QD1 latency stays within 10% of its unloaded run.
import { DataPlanePool } from "../data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../data-plane/settings.ts";
import { SimWorkerDevice } from "../sim/sim-worker-device.ts";
import { BENCH_STALLING_STORE_URL } from "../worker-urls.ts";
import { runSimBench, type SimBenchResult } from "./sim-bench.ts";

export interface IsolationResult {
  alone: SimBenchResult;
  besideStall: SimBenchResult;
  /** Reads the stalled neighbour finished meanwhile (each blocked its worker for STALL_MS). */
  stalledCommands: number;
}

const DEVICE_BYTES = 16 * 1024 * 1024;
const silent = { info: () => {}, warn: () => {}, error: () => {} };

export async function runIsolationBench(seconds: number): Promise<IsolationResult> {
  const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 2 }, silent);
  const devices: SimWorkerDevice[] = [];
  try {
    const fast = await SimWorkerDevice.attach(pool, { name: "fast", sizeBytes: DEVICE_BYTES });
    devices.push(fast);
    const stalled = await SimWorkerDevice.attach(pool, { name: "stalled", sizeBytes: DEVICE_BYTES, openerModule: BENCH_STALLING_STORE_URL });
    devices.push(stalled);
    if (fast.worker === stalled.worker) throw new Error("the pool put both devices on one worker");
    const job = (device: SimWorkerDevice, label: string, seed: number) =>
      runSimBench({ label, device, ioBytes: 4096, queueDepth: 1, pattern: "rand", operation: "read", durationMs: seconds * 1000, seed });
    const alone = await job(fast, "alone", 1);
    const [besideStall, stalledRun] = await Promise.all([job(fast, "beside a stalled store", 1), job(stalled, "stalled", 2)]);
    return { alone, besideStall, stalledCommands: stalledRun.commands };
  } finally {
    for (const device of devices) await device.detach();
    pool.stop();
  }
}

export function formatIsolation(result: IsolationResult): string {
  const row = (run: SimBenchResult) =>
    `${run.label.padEnd(24)} ${run.iops.toFixed(0).padStart(8)}  ${run.latencyP50Us.toFixed(1).padStart(8)}  ${run.latencyP99Us.toFixed(1).padStart(8)}`;
  // At QD1 the mean latency is 1 / IOPS.
  const meanRatio = result.alone.iops / result.besideStall.iops;
  const p50Ratio = result.besideStall.latencyP50Us / result.alone.latencyP50Us;
  return [
    "4k randread QD1 on a RAM device     IOPS   p50 µs    p99 µs",
    row(result.alone),
    row(result.besideStall),
    `beside the stall / alone: mean latency ${meanRatio.toFixed(2)}, p50 ${p50Ratio.toFixed(2)} (target ≤ 1.10); ` +
      `the stalled neighbour finished ${result.stalledCommands} reads meanwhile`,
  ].join("\n");
}
