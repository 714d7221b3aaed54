// Random mutations of valid images (seeded: a failure prints the seed and case that reproduce
// it): every open either succeeds or is refused with ImageRefusedError, and every read either
// returns data or fails with BackstoreError "read" (MEDIUM ERROR) — never another exception, a
// hang or a read outside the file. Where we read a mutated image whole and QEMU reads it too, the
// bytes must agree.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { ImageRefusedError, openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { BackstoreError, type Backstore } from "../../../backstores/types.ts";
import { MappedBuffer } from "../support.ts";
import { expectSameBytes, ImageLab, KiB, MiB, prng, sourceBytes } from "./support.ts";

const lab = new ImageLab();
const buffer = new MappedBuffer(64 * KiB);
afterAll(() => {
  buffer.release();
  lab.remove();
});

const SEED = 0x5eed_0c02;
const MUTATIONS_PER_IMAGE = 600;
/** Mutated images read whole by both readers and compared, per base image. */
const QEMU_COMPARISONS_MAX = 12;
const CHUNK_BYTES = 64 * KiB;
const HEADER_BYTES = 512;

interface Base {
  name: string;
  format: string;
  build: () => void;
}

function fromSource(name: string, sizeBytes: number, seed: number, options: string[], format = "qcow2"): void {
  lab.writeFile(`${name}.src`, sourceBytes(sizeBytes, seed));
  lab.qemuImg("convert", "-f", "raw", "-O", format, ...options, `${name}.src`, name);
}

const bases: Base[] = [
  { name: "deflate-4k.qcow2", format: "qcow2", build: () => fromSource("deflate-4k.qcow2", MiB, 71, ["-c", "-o", "cluster_size=4096"]) },
  { name: "zstd-16k.qcow2", format: "qcow2", build: () => fromSource("zstd-16k.qcow2", MiB, 72, ["-c", "-o", "cluster_size=16384,compression_type=zstd"]) },
  { name: "v2-512.qcow2", format: "qcow2", build: () => fromSource("v2-512.qcow2", 512 * KiB, 73, ["-o", "compat=0.10,cluster_size=512"]) },
  {
    name: "xl2-chain.qcow2",
    format: "qcow2",
    build: () => {
      fromSource("xl2-base.qcow2", MiB, 74, ["-c", "-o", "cluster_size=16384"]);
      lab.qemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16384", "-b", "xl2-base.qcow2", "-F", "qcow2", "xl2-chain.qcow2", "1M");
      lab.qemuIo("qcow2", "xl2-chain.qcow2", "write -P 0x41 1k 2k", "write -z 40k 1k", "write -P 0x42 200k 24k", "write -z -u 512k 16k");
      lab.qemuImg("snapshot", "-c", "s1", "xl2-chain.qcow2");
    },
  },
  {
    name: "ext.qcow2",
    format: "qcow2",
    build: () => {
      lab.qemuImg("create", "-f", "qcow2", "-o", "data_file=ext.data,cluster_size=4096", "ext.qcow2", "1M");
      lab.qemuIo("qcow2", "ext.qcow2", "write -P 0x51 0 64k", "write -P 0x52 300k 20k", "write -z 310k 4k");
    },
  },
  {
    name: "v1.qcow",
    format: "qcow",
    build: () => {
      lab.qemuImg("create", "-f", "qcow", "v1.qcow", "1M");
      lab.qemuIo("qcow", "v1.qcow", "write -c -P 0x61 0 4k", "write -P 0x62 8k 8k", "write -c -P 0x63 64k 4k", "write -P 0x64 512k 4k");
    },
  },
];

type Outcome = "refused" | "medium-error" | "read";

/** Reads every 64 KiB of the device; returns the bytes, or undefined when a read failed with MEDIUM ERROR. */
function readAll(backstore: Backstore): Uint8Array | undefined {
  const bytes = new Uint8Array(backstore.sizeBytes);
  let failed = false;
  for (let offset = 0; offset < backstore.sizeBytes; offset += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, backstore.sizeBytes - offset);
    try {
      backstore.read(offset, length, buffer.segments(length), 0);
      bytes.set(buffer.bytes.subarray(0, length), offset);
    } catch (error) {
      if (!(error instanceof BackstoreError) || error.kind !== "read") throw error;
      expect(error.offsetBytes).toBeGreaterThanOrEqual(offset);
      expect(error.offsetBytes).toBeLessThan(offset + length);
      failed = true;
    }
  }
  return failed ? undefined : bytes;
}

/**
 * Where mutations land: the header sector, and every byte of the image file that is not plain
 * guest data by `qemu-img map` (tables, compressed data, extensions, snapshots).
 */
function metadataRanges(name: string, fileBytes: number, dataInOtherFile: boolean): [number, number][] {
  const data: [number, number][] = [];
  if (!dataInOtherFile) {
    const map = JSON.parse(lab.qemuImg("map", "--output=json", name)) as { depth: number; length: number; data: boolean; offset?: number }[];
    for (const extent of map) if (extent.depth === 0 && extent.data && extent.offset !== undefined) data.push([extent.offset, extent.offset + extent.length]);
  }
  data.sort((a, b) => a[0] - b[0]);
  const ranges: [number, number][] = [];
  let position = 0;
  for (const [start, end] of data) {
    if (start > position) ranges.push([position, start]);
    position = Math.max(position, end);
  }
  if (position < fileBytes) ranges.push([position, fileBytes]);
  return ranges;
}

function pick(ranges: [number, number][], random: () => number): number {
  const total = ranges.reduce((sum, [start, end]) => sum + end - start, 0);
  let target = Math.floor(random() * total);
  for (const [start, end] of ranges) {
    if (target < end - start) return start + target;
    target -= end - start;
  }
  return 0;
}

/** Flips bits, writes interesting 64-bit values, or scribbles bytes at 1..4 places. */
function mutate(image: Uint8Array, ranges: [number, number][], random: () => number): void {
  const places = 1 + Math.floor(random() * 4);
  for (let place = 0; place < places; place += 1) {
    const position = random() < 0.3 ? Math.floor(random() * HEADER_BYTES) : pick(ranges, random);
    const kind = random();
    if (kind < 0.4) {
      image[position] = image[position]! ^ (1 << Math.floor(random() * 8));
    } else if (kind < 0.8 && position + 8 <= image.byteLength) {
      const aligned = position - (position % 8);
      const interesting = [0n, 1n, 1n << 63n, (1n << 63n) | BigInt(image.byteLength), BigInt(image.byteLength + 512), 1n << 62n, (1n << 64n) - 1n, BigInt(Math.floor(random() * 2 ** 32)) << 9n];
      new DataView(image.buffer).setBigUint64(aligned, interesting[Math.floor(random() * interesting.length)]!, false);
    } else {
      image[position] = Math.floor(random() * 256);
    }
  }
}

describe("mutated images never crash the reader", () => {
  bases.forEach((base, baseIndex) => {
    test(`${MUTATIONS_PER_IMAGE} mutations of ${base.name}`, () => {
      base.build();
      const original = lab.readFile(base.name);
      const sizeBytes = lab.virtualSize(base.name);
      const ranges = metadataRanges(base.name, original.byteLength, base.name === "ext.qcow2");
      const outcomes: Record<Outcome, number> = { refused: 0, "medium-error": 0, read: 0 };
      let comparisons = 0;
      const target = lab.path(`mutated-${base.name}`);
      for (let iteration = 0; iteration < MUTATIONS_PER_IMAGE; iteration += 1) {
        const seed = SEED + baseIndex * 100_000 + iteration;
        const image = original.slice();
        mutate(image, ranges, prng(seed));
        writeFileSync(target, image);
        let backstore: Backstore;
        try {
          backstore = openQcow2Backstore(target, { sizeBytes, readOnly: true, snapshot: base.name === "xl2-chain.qcow2" && iteration % 2 === 1 ? "s1" : undefined });
        } catch (error) {
          if (!(error instanceof ImageRefusedError)) throw new Error(`seed ${seed}: open threw ${String(error)}`);
          outcomes.refused += 1;
          continue;
        }
        let bytes: Uint8Array | undefined;
        try {
          bytes = readAll(backstore);
        } catch (error) {
          throw new Error(`seed ${seed}: read threw ${String(error)}`);
        } finally {
          backstore.close();
        }
        outcomes[bytes === undefined ? "medium-error" : "read"] += 1;
        if (bytes !== undefined && comparisons < QEMU_COMPARISONS_MAX && iteration % 2 === 0) {
          comparisons += 1;
          const qemu = Bun.spawnSync(["qemu-img", "convert", "-U", "-O", "raw", target, `${target}.raw`], { stdout: "pipe", stderr: "pipe" });
          if (qemu.exitCode === 0) expectSameBytes(bytes, lab.readFile(`mutated-${base.name}.raw`).subarray(0, sizeBytes), `seed ${seed} against QEMU`);
        }
      }
      // The mutations reach every outcome: some are refused, some fail a read, most still read.
      expect(outcomes.refused + outcomes["medium-error"] + outcomes.read).toBe(MUTATIONS_PER_IMAGE);
      expect(outcomes.read).toBeGreaterThan(0);
      expect(outcomes.refused + outcomes["medium-error"]).toBeGreaterThan(0);
    });
  });
});
