#!/usr/bin/env bun
// Read benchmark of the qcow2 backstore against `qemu-img bench` on the same files, in one run:
// a plain, a deflate and a zstd image made from the same data, read in 4 KiB and 64 KiB pieces
// at random and 4 KiB sequentially. Both sides visit the same offsets: `qemu-img bench -S STEP`
// walks the image in steps of STEP modulo its size; for "random", STEP is the odd block count
// nearest 0.618 × the image (a golden-ratio walk: every read lands far from the last ones and
// each block is visited once a lap). One request at a time, page cache warm.
//
// Usage: bun scripts/bench-qcow2.ts [--size-mib N] [--seconds S] [--keep]
import { toArrayBuffer } from "bun:ffi";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openQcow2Backstore } from "../backstores/qcow2/index.ts";
import { mmapAnonymous, munmap } from "../src/libc/libc.ts";
import { DataSegments } from "../src/ring/data-segments.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/** The golden ratio's fraction: a walk in steps of this much of the image looks random. */
const GOLDEN_FRACTION = 0.6180339887;
const SOURCE_CHUNK_BYTES = 4 * KiB;
/** [pattern, block size]: random 4 KiB and 64 KiB, sequential 4 KiB (where a cluster cache pays). */
const JOBS = [
  ["random", 4 * KiB],
  ["random", 64 * KiB],
  ["sequential", 4 * KiB],
] as const;
type Pattern = (typeof JOBS)[number][0];

/** Bytes between consecutive reads. */
function stepBytes(pattern: Pattern, blockBytes: number, sizeBytes: number): number {
  if (pattern === "sequential") return blockBytes;
  const blocks = sizeBytes / blockBytes;
  const step = Math.round(blocks * GOLDEN_FRACTION);
  return (step % 2 === 0 ? step + 1 : step) * blockBytes;
}

interface Args {
  sizeMib: number;
  seconds: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizeMib: 256, seconds: 2, keep: false };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index];
    if (flag === "--keep") args.keep = true;
    else if (flag === "--size-mib") args.sizeMib = Number(argv[++index]);
    else if (flag === "--seconds") args.seconds = Number(argv[++index]);
    else throw new Error(`unknown argument ${flag} (--size-mib N, --seconds S, --keep)`);
  }
  if (!Number.isInteger(args.sizeMib) || args.sizeMib < 16) throw new Error("--size-mib must be an integer of at least 16");
  if (!(args.seconds > 0)) throw new Error("--seconds must be positive");
  return args;
}

function run(command: string[], cwd: string): string {
  const result = Bun.spawnSync(command, { cwd, stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${command.join(" ")}: ${result.stderr.toString()}`);
  return result.stdout.toString();
}

/** Data like a used disk: a third random, a third text-like, a third zeros (4 KiB pieces). */
function sourceBytes(lengthBytes: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  const words = new TextEncoder().encode("the quick brown fox jumps over the lazy qcow2 reader; ");
  let state = 0x2545f491;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  for (let chunk = 0; chunk < lengthBytes; chunk += SOURCE_CHUNK_BYTES) {
    const kind = next() % 3;
    if (kind === 0) crypto.getRandomValues(bytes.subarray(chunk, chunk + SOURCE_CHUNK_BYTES));
    else if (kind === 1) for (let index = chunk; index < chunk + SOURCE_CHUNK_BYTES; index += 1) bytes[index] = words[(index * 7 + (index >> 9)) % words.length]!;
  }
  return bytes;
}

/** Reads a count that takes about `seconds` at `rate` reads per second, rounded. */
function readsFor(seconds: number, blockBytes: number): number {
  return Math.max(1000, Math.round((seconds * (blockBytes === 4 * KiB ? 40_000 : 8_000)) / 1000) * 1000);
}

function qemuSeconds(image: string, blockBytes: number, step: number, reads: number, dir: string): number {
  const output = run(["qemu-img", "bench", "-f", "qcow2", "-d", "1", "-c", String(reads), "-s", String(blockBytes), "-S", String(step), image], dir);
  const match = /Run completed in ([\d.]+) seconds/.exec(output);
  if (match === null) throw new Error(`qemu-img bench said: ${output}`);
  return Number(match[1]);
}

function oursSeconds(path: string, sizeBytes: number, blockBytes: number, step: number, reads: number): number {
  const address = mmapAnonymous(blockBytes);
  const memory = new Uint8Array(toArrayBuffer(address, 0, blockBytes));
  const segments = new DataSegments(memory, address);
  segments.push(0, blockBytes);
  const backstore = openQcow2Backstore(path, { sizeBytes, readOnly: true });
  let offset = 0;
  const start = performance.now();
  for (let read = 0; read < reads; read += 1) {
    backstore.read(offset, blockBytes, segments, 0);
    offset = (offset + step) % sizeBytes;
  }
  const seconds = (performance.now() - start) / 1000;
  backstore.close();
  munmap(address, blockBytes);
  return seconds;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "bench-qcow2-"));
  const sizeBytes = args.sizeMib * MiB;
  try {
    writeFileSync(join(dir, "source.raw"), sourceBytes(sizeBytes));
    const images: [string, string[]][] = [
      ["plain", []],
      ["deflate", ["-c", "-o", "compression_type=zlib"]],
      ["zstd", ["-c", "-o", "compression_type=zstd"]],
    ];
    for (const [name, options] of images) run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", ...options, "source.raw", `${name}.qcow2`], dir);
    rmSync(join(dir, "source.raw"));
    console.log(`qcow2 reads, ${args.sizeMib} MiB images (64 KiB clusters), one request at a time, page cache warm`);
    console.log("image     pattern     block   qemu-img bench   ours (backstore)   ours/qemu");
    for (const [name] of images) {
      const path = join(dir, `${name}.qcow2`);
      readFileSync(path); // warm the page cache for both readers
      for (const [pattern, blockBytes] of JOBS) {
        const reads = readsFor(args.seconds, blockBytes);
        const step = stepBytes(pattern, blockBytes, sizeBytes);
        const qemu = qemuSeconds(`${name}.qcow2`, blockBytes, step, reads, dir);
        const ours = oursSeconds(path, sizeBytes, blockBytes, step, reads);
        const rate = (seconds: number) => `${((reads * blockBytes) / MiB / seconds).toFixed(0).padStart(6)} MiB/s`;
        console.log(`${name.padEnd(9)} ${pattern.padEnd(10)} ${String(blockBytes / KiB).padStart(2)} KiB  ${rate(qemu)}     ${rate(ours)}       ${(qemu / ours).toFixed(2)}×`);
      }
    }
  } finally {
    if (args.keep) console.log(`images kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main();
