// Drives a simulated device at a fixed queue depth for a fixed time and reports IOPS, MB/s and
// latency percentiles. Everything runs in-process: no root, no kernel module. The simulator
// stands in for target_core_user, so the numbers are the handler's cost (ring, SCSI, backstore)
// plus the simulator's, never the kernel's.
import type { Completion, SubmitOptions } from "../sim/kernel-sim.ts";

/** A simulated device in-process (SimDevice) or on a data-plane worker (SimWorkerDevice). */
export interface BenchTarget {
  readonly blockSizeBytes: number;
  readonly sizeBytes: number;
  submit(cdb: Uint8Array, options?: SubmitOptions): Promise<Completion>;
}

export type BenchPattern = "rand" | "seq";
export type BenchOperation = "read" | "write";

export interface SimBenchJob {
  label: string;
  device: BenchTarget;
  ioBytes: number;
  queueDepth: number;
  pattern: BenchPattern;
  operation: BenchOperation;
  durationMs: number;
  /** Deterministic random offsets. */
  seed?: number;
}

export interface SimBenchResult {
  label: string;
  operation: BenchOperation;
  pattern: BenchPattern;
  ioBytes: number;
  queueDepth: number;
  commands: number;
  iops: number;
  megabytesPerSecond: number;
  latencyP50Us: number;
  latencyP99Us: number;
  latencyP999Us: number;
}

/** Latencies kept for percentiles; later commands are counted but not sampled. */
const LATENCY_SAMPLES_MAX = 1_000_000;
const READ_16 = 0x88;
const WRITE_16 = 0x8a;
const U32_SPAN = 0x1_0000_0000;

export async function runSimBench(job: SimBenchJob): Promise<SimBenchResult> {
  const device = job.device;
  const blockBytes = device.blockSizeBytes;
  const blocksPerIo = job.ioBytes / blockBytes;
  const capacityIos = Math.floor(device.sizeBytes / job.ioBytes);
  const payload = new Uint8Array(job.ioBytes).fill(0x5a);
  const latencies = new Float64Array(Math.min(LATENCY_SAMPLES_MAX, 64 + job.durationMs * 2000));
  const options = job.operation === "read" ? { dataInBytes: job.ioBytes, gatherDataIn: false } : { dataOut: payload };
  let samples = 0;
  let commands = 0;
  let sequentialIo = 0;
  let random = job.seed ?? 0x9e37_79b9;
  const nextIo = (): number => {
    if (job.pattern === "seq") return sequentialIo++ % capacityIos;
    // xorshift32: deterministic and allocation-free.
    random ^= random << 13;
    random ^= random >>> 17;
    random ^= random << 5;
    return (random >>> 0) % capacityIos;
  };

  const started = performance.now();
  const deadline = started + job.durationMs;
  const worker = async (): Promise<void> => {
    // One CDB per worker: the simulator copies it into the ring, and a worker has one command
    // outstanding, so it is never rewritten while still needed.
    const cdb = new Uint8Array(16);
    const view = new DataView(cdb.buffer);
    cdb[0] = job.operation === "read" ? READ_16 : WRITE_16;
    view.setUint32(10, blocksPerIo, false);
    while (performance.now() < deadline) {
      const lba = nextIo() * blocksPerIo;
      view.setUint32(2, Math.floor(lba / U32_SPAN), false);
      view.setUint32(6, lba % U32_SPAN, false);
      const issued = performance.now();
      const completion = await device.submit(cdb, options);
      if (completion.status !== 0) throw new Error(`${job.label}: ${job.operation} at LBA ${lba} failed with status ${completion.status}`);
      if (samples < latencies.length) latencies[samples++] = performance.now() - issued;
      commands += 1;
    }
  };
  await Promise.all(Array.from({ length: job.queueDepth }, worker));
  const elapsedSeconds = (performance.now() - started) / 1000;

  const sorted = latencies.subarray(0, samples).sort();
  const percentileUs = (fraction: number) => (samples === 0 ? 0 : sorted[Math.min(samples - 1, Math.floor(samples * fraction))]! * 1000);
  return {
    label: job.label,
    operation: job.operation,
    pattern: job.pattern,
    ioBytes: job.ioBytes,
    queueDepth: job.queueDepth,
    commands,
    iops: commands / elapsedSeconds,
    megabytesPerSecond: (commands * job.ioBytes) / elapsedSeconds / 1e6,
    latencyP50Us: percentileUs(0.5),
    latencyP99Us: percentileUs(0.99),
    latencyP999Us: percentileUs(0.999),
  };
}

export function formatSize(bytes: number): string {
  return bytes >= 1048576 ? `${bytes / 1048576}M` : `${bytes / 1024}k`;
}

export function formatResults(results: readonly SimBenchResult[]): string {
  const header = ["backstore", "op", "pattern", "io", "qd", "IOPS", "MB/s", "p50 µs", "p99 µs", "p99.9 µs"];
  const rows = results.map((result) => [
    result.label,
    result.operation,
    result.pattern,
    formatSize(result.ioBytes),
    String(result.queueDepth),
    result.iops.toFixed(0),
    result.megabytesPerSecond.toFixed(1),
    result.latencyP50Us.toFixed(1),
    result.latencyP99Us.toFixed(1),
    result.latencyP999Us.toFixed(1),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column < 3 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}
