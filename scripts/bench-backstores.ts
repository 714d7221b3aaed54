// Throughput of the RAM and file backstores through the kernel simulator (ring + SCSI + store),
// 4 KiB and 1 MiB, sequential and random, read and write. Prints commands/s and MB/s.
//
//   bun scripts/bench-backstores.ts [--seconds 1] [--size-mib 512] [--queue-depth 8] [--dir /var/tmp]
//
// The file runs use a sparse image in --dir (filled before the reads); writes go with the write
// cache enabled (no FUA), so they measure the data path, not the disk's flush.
import { parseArgs } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { openFileBackstore } from "../backstores/file/open-file.ts";
import { RamBackstore } from "../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../backstores/types.ts";
import { SimDevice } from "../src/sim/sim-device.ts";

const BLOCK_BYTES = 512;
const SIM_DATA_BLOCK_BYTES = 4096;
const IO_SIZES_BYTES = [4096, 1024 * 1024] as const;
const FILL_IO_BYTES = 1024 * 1024;

interface Case {
  operation: "read" | "write";
  pattern: "seq" | "rand";
  ioBytes: number;
}

interface Result extends Case {
  label: string;
  commandsPerSecond: number;
  megabytesPerSecond: number;
}

const CASES: Case[] = IO_SIZES_BYTES.flatMap((ioBytes) =>
  (["write", "read"] as const).flatMap((operation) => (["seq", "rand"] as const).map((pattern) => ({ operation, pattern, ioBytes }))),
);

function deviceOver(backstore: Backstore, queueDepth: number): SimDevice {
  const largestIoBytes = Math.max(...IO_SIZES_BYTES);
  return new SimDevice({
    backstore,
    sizeBytes: backstore.sizeBytes,
    blockSizeBytes: BLOCK_BYTES,
    sim: { ringAreaBytes: 1024 * 1024, dataBlockCount: (queueDepth * largestIoBytes) / SIM_DATA_BLOCK_BYTES + 16 },
    scsi: { writeCacheEnabled: true, maxTransferBlocks: largestIoBytes / BLOCK_BYTES },
  });
}

function writeCdb(io: number, blocks: number, operation: "read" | "write"): Uint8Array {
  const cdb = new Uint8Array(16);
  cdb[0] = operation === "read" ? 0x88 : 0x8a;
  const view = new DataView(cdb.buffer);
  view.setBigUint64(2, BigInt(io) * BigInt(blocks), false);
  view.setUint32(10, blocks, false);
  return cdb;
}

/** Writes every byte once so reads measure data, not holes. */
async function fill(device: SimDevice, sizeBytes: number): Promise<void> {
  const payload = new Uint8Array(FILL_IO_BYTES).fill(0x3c);
  const blocks = FILL_IO_BYTES / BLOCK_BYTES;
  for (let io = 0; io < sizeBytes / FILL_IO_BYTES; io += 1) {
    const completion = await device.submit(writeCdb(io, blocks, "write"), { dataOut: payload });
    if (completion.status !== 0) throw new Error(`fill failed at ${io * FILL_IO_BYTES}`);
  }
}

async function runCase(device: SimDevice, label: string, test: Case, seconds: number, queueDepth: number): Promise<Result> {
  const blocks = test.ioBytes / BLOCK_BYTES;
  const ioCount = Math.floor(device.backstore.sizeBytes / test.ioBytes);
  const options = test.operation === "read" ? { dataInBytes: test.ioBytes } : { dataOut: new Uint8Array(test.ioBytes).fill(0x5a) };
  let sequential = 0;
  let random = 0x9e3779b9;
  const nextIo = () => {
    if (test.pattern === "seq") return sequential++ % ioCount;
    random ^= random << 13;
    random ^= random >>> 17;
    random ^= random << 5;
    return (random >>> 0) % ioCount;
  };
  let commands = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const completion = await device.submit(writeCdb(nextIo(), blocks, test.operation), options);
      if (completion.status !== 0) throw new Error(`${label} ${test.operation}: status ${completion.status}`);
      commands += 1;
    }
  };
  await Promise.all(Array.from({ length: queueDepth }, worker));
  const elapsedSeconds = (performance.now() - started) / 1000;
  return {
    ...test,
    label,
    commandsPerSecond: commands / elapsedSeconds,
    megabytesPerSecond: (commands * test.ioBytes) / elapsedSeconds / 1e6,
  };
}

async function benchStore(label: string, backstore: Backstore, seconds: number, queueDepth: number): Promise<Result[]> {
  const device = deviceOver(backstore, queueDepth);
  const results: Result[] = [];
  try {
    await fill(device, backstore.sizeBytes);
    for (const test of CASES) results.push(await runCase(device, label, test, seconds, queueDepth));
  } finally {
    await device.close();
  }
  return results;
}

function formatTable(results: Result[]): string {
  const header = ["backstore", "op", "pattern", "io", "cmds/s", "MB/s"];
  const rows = results.map((result) => [
    result.label,
    result.operation,
    result.pattern,
    result.ioBytes >= 1024 * 1024 ? `${result.ioBytes / (1024 * 1024)} MiB` : `${result.ioBytes / 1024} KiB`,
    result.commandsPerSecond.toFixed(0),
    result.megabytesPerSecond.toFixed(0),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column < 4 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ");
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "1" },
      "size-mib": { type: "string", default: "512" },
      "queue-depth": { type: "string", default: "8" },
      dir: { type: "string", default: "/var/tmp" },
    },
  });
  const seconds = Number(values.seconds);
  const sizeBytes = Number(values["size-mib"]) * 1024 * 1024;
  const queueDepth = Number(values["queue-depth"]);
  if (!(seconds > 0) || !(sizeBytes >= FILL_IO_BYTES) || !Number.isInteger(queueDepth) || queueDepth < 1) {
    throw new Error("--seconds > 0, --size-mib >= 1 and --queue-depth >= 1, please");
  }
  const directory = mkdtempSync(join(values.dir, "tcmu-bench-"));
  const results: Result[] = [];
  try {
    const ram = new RamBackstore(sizeBytes, { deviceKey: `bench/${process.pid}`, label: "bench" });
    try {
      results.push(...(await benchStore("ram", ram, seconds, queueDepth)));
    } finally {
      ram.destroy();
    }
    const options = { sizeBytes, blockSizeBytes: BLOCK_BYTES };
    results.push(...(await benchStore("file", openFileBackstore(join(directory, "buffered.img"), options), seconds, queueDepth)));
    results.push(...(await benchStore("file;direct", openFileBackstore(join(directory, "direct.img"), { ...options, direct: true }), seconds, queueDepth)));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  console.log(`device ${sizeBytes / (1024 * 1024)} MiB, queue depth ${queueDepth}, ${seconds} s per case, write cache on\n`);
  console.log(formatTable(results));
}

await main();
