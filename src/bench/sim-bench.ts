// Drives a simulated device at a fixed queue depth for a fixed time and reports IOPS, MB/s and
// latency percentiles. Everything runs in-process: no root, no kernel module.
import type { Backstore } from "../../backstores/types.ts";
import { SimDevice } from "../sim/sim-device.ts";

export interface SimBenchJob {
  label: string;
  backstore: Backstore;
  blockSizeBytes: number;
  ioBytes: number;
  queueDepth: number;
  pattern: "rand" | "seq";
  operation: "read" | "write";
  durationMs: number;
}

export interface SimBenchResult {
  label: string;
  operation: string;
  pattern: string;
  ioBytes: number;
  queueDepth: number;
  commands: number;
  iops: number;
  megabytesPerSecond: number;
  latencyP50Us: number;
  latencyP99Us: number;
}

const LATENCY_SAMPLES_MAX = 200_000;

export async function runSimBench(job: SimBenchJob): Promise<SimBenchResult> {
  const blocksPerIo = job.ioBytes / job.blockSizeBytes;
  const dataBlocks = Math.ceil((job.ioBytes * job.queueDepth) / 4096) + 16;
  const device = new SimDevice({
    backstore: job.backstore,
    blockSizeBytes: job.blockSizeBytes,
    sim: { ringAreaBytes: 1024 * 1024, dataBlockCount: dataBlocks },
  });
  const capacityIos = Math.floor(job.backstore.sizeBytes / job.ioBytes);
  const payload = new Uint8Array(job.ioBytes).fill(0x5a);
  const latencies = new Float64Array(LATENCY_SAMPLES_MAX);
  let samples = 0;
  let commands = 0;
  let sequentialIo = 0;
  let random = 0x9e3779b9;
  const nextIo = () => {
    if (job.pattern === "seq") return sequentialIo++ % capacityIos;
    random ^= random << 13;
    random ^= random >>> 17;
    random ^= random << 5;
    return (random >>> 0) % capacityIos;
  };
  const cdb = (io: number) => {
    const bytes = new Uint8Array(16);
    bytes[0] = job.operation === "read" ? 0x88 : 0x8a;
    const view = new DataView(bytes.buffer);
    view.setBigUint64(2, BigInt(io * blocksPerIo));
    view.setUint32(10, blocksPerIo);
    return bytes;
  };
  const options = job.operation === "read" ? { dataInBytes: job.ioBytes } : { dataOut: payload };

  const started = performance.now();
  const deadline = started + job.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const issued = performance.now();
      const completion = await device.submit(cdb(nextIo()), options);
      if (completion.status !== 0) throw new Error(`${job.label}: command failed with status ${completion.status}`);
      if (samples < LATENCY_SAMPLES_MAX) latencies[samples++] = performance.now() - issued;
      commands += 1;
    }
  };
  await Promise.all(Array.from({ length: job.queueDepth }, worker));
  const elapsedSeconds = (performance.now() - started) / 1000;
  await device.close();

  const sorted = latencies.subarray(0, samples).sort();
  const percentile = (p: number) => (samples === 0 ? 0 : sorted[Math.min(samples - 1, Math.floor(samples * p))]! * 1000);
  return {
    label: job.label,
    operation: job.operation,
    pattern: job.pattern,
    ioBytes: job.ioBytes,
    queueDepth: job.queueDepth,
    commands,
    iops: commands / elapsedSeconds,
    megabytesPerSecond: (commands * job.ioBytes) / elapsedSeconds / 1e6,
    latencyP50Us: percentile(0.5),
    latencyP99Us: percentile(0.99),
  };
}

export function formatResults(results: SimBenchResult[]): string {
  const header = ["backstore", "op", "pattern", "io", "qd", "IOPS", "MB/s", "p50 µs", "p99 µs"];
  const rows = results.map((result) => [
    result.label,
    result.operation,
    result.pattern,
    result.ioBytes >= 1048576 ? `${result.ioBytes / 1048576}M` : `${result.ioBytes / 1024}k`,
    String(result.queueDepth),
    result.iops.toFixed(0),
    result.megabytesPerSecond.toFixed(1),
    result.latencyP50Us.toFixed(1),
    result.latencyP99Us.toFixed(1),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padStart(widths[column]!)).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}
