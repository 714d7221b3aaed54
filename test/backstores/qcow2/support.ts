// Helpers for the qcow2 tests: a scratch directory where qemu-img and qemu-io make images, the
// reference bytes (`qemu-img convert -U -O raw`), seeded source data with a realistic mix of
// incompressible, compressible and zero stretches, and readers that pull a whole device through
// the simulator (SCSI READ commands) or straight from the backstore into scattered segments.
import { expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backstore } from "../../../backstores/types.ts";
import { SimDevice } from "../../../src/sim/sim-device.ts";
import * as cdbs from "../../support/cdbs.ts";
import { MappedBuffer } from "../support.ts";

export const KiB = 1024;
export const MiB = 1024 * 1024;
const SECTOR_BYTES = 512;
/** The simulator's transfer limit (maxTransferBlocks 128 of 512 bytes). */
const SIM_READ_BYTES_MAX = 64 * KiB;
const SOURCE_CHUNK_BYTES = 4 * KiB;

/** A seeded PRNG (mulberry32): a failing case prints its seed, and the seed reproduces it. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** Source data: 4 KiB chunks of random bytes, compressible text or zeros, chosen by `seed`. */
export function sourceBytes(lengthBytes: number, seed: number): Uint8Array {
  const random = prng(seed);
  const bytes = new Uint8Array(lengthBytes);
  const text = new TextEncoder().encode(`qcow2 reader test data, seed ${seed}; `);
  for (let chunk = 0; chunk < lengthBytes; chunk += SOURCE_CHUNK_BYTES) {
    const end = Math.min(chunk + SOURCE_CHUNK_BYTES, lengthBytes);
    const kind = random();
    if (kind < 0.3) {
      for (let index = chunk; index < end; index += 1) bytes[index] = (random() * 256) | 0;
    } else if (kind < 0.7) {
      for (let index = chunk; index < end; index += 1) bytes[index] = text[(index + chunk / SOURCE_CHUNK_BYTES) % text.length]!;
    }
  }
  return bytes;
}

export class ImageLab {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "tcmu-qcow2-"));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Runs a command in the lab directory; a failure throws with its stderr. */
  run(command: string[], cwd = this.dir): string {
    const result = Bun.spawnSync(command, { cwd, stdout: "pipe", stderr: "pipe" });
    if (result.exitCode !== 0) throw new Error(`${command.join(" ")} failed (${result.exitCode}): ${result.stderr.toString()}`);
    return result.stdout.toString();
  }

  qemuImg(...args: string[]): string {
    return this.run(["qemu-img", ...args]);
  }

  /** qemu-io on `name` with each of `commands` as a -c argument. */
  qemuIo(format: string, name: string, ...commands: string[]): void {
    this.run(["qemu-io", "-f", format, ...commands.flatMap((command) => ["-c", command]), name]);
  }

  writeFile(name: string, bytes: Uint8Array): string {
    writeFileSync(this.path(name), bytes);
    return this.path(name);
  }

  readFile(name: string): Uint8Array {
    return new Uint8Array(readFileSync(this.path(name)));
  }

  /** What QEMU reads: `qemu-img convert -U -O raw` (of a snapshot with `snapshot`). */
  reference(name: string, snapshot?: string): Uint8Array {
    const output = `${name}.reference.raw`;
    const snapshotArgs = snapshot === undefined ? [] : ["-l", `snapshot.name=${snapshot}`];
    this.qemuImg("convert", "-U", ...snapshotArgs, "-O", "raw", name, output);
    const bytes = this.readFile(output);
    rmSync(this.path(output));
    return bytes;
  }

  /** The virtual size `qemu-img info` reports. */
  virtualSize(name: string): number {
    return (JSON.parse(this.qemuImg("info", "-U", "--output=json", name)) as { "virtual-size": number })["virtual-size"];
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Reads the whole device through the simulated ring with READ(16) commands of at most 64 KiB; closes the backstore. */
export async function readThroughSim(backstore: Backstore, sizeBytes: number): Promise<Uint8Array> {
  const device = new SimDevice({ backstore, sizeBytes, blockSizeBytes: SECTOR_BYTES });
  const bytes = new Uint8Array(sizeBytes);
  try {
    for (let offset = 0; offset < sizeBytes; offset += SIM_READ_BYTES_MAX) {
      const length = Math.min(SIM_READ_BYTES_MAX, sizeBytes - offset);
      const completion = await device.submit(cdbs.read16(offset / SECTOR_BYTES, length / SECTOR_BYTES), { dataInBytes: length });
      if (completion.status !== 0) throw new Error(`READ(16) at ${offset} answered status ${completion.status}, sense ${cdbs.senseTriple(completion.sense)}`);
      bytes.set(completion.dataIn, offset);
    }
  } finally {
    await device.close();
  }
  return bytes;
}

/**
 * Reads `lengthBytes` from `offsetBytes` straight from the backstore into segments of
 * `pieceBytes` with gaps between them (more than one preadv's worth of iovecs when small).
 */
export function readScattered(backstore: Backstore, offsetBytes: number, lengthBytes: number, pieceBytes: number): Uint8Array {
  const stride = pieceBytes + SECTOR_BYTES;
  const buffer = new MappedBuffer(Math.ceil(lengthBytes / pieceBytes) * stride);
  try {
    const segments = buffer.segments(lengthBytes, pieceBytes, stride);
    const result = backstore.read(offsetBytes, lengthBytes, segments, 0);
    if (result !== undefined) throw new Error("the qcow2 backstore reads synchronously");
    const bytes = new Uint8Array(lengthBytes);
    segments.copyTo(bytes);
    return bytes;
  } finally {
    buffer.release();
  }
}

/** Reads the whole store directly in `chunkBytes` pieces (no SCSI layer). */
export function readAllDirect(backstore: Backstore, sizeBytes: number, chunkBytes = MiB): Uint8Array {
  const bytes = new Uint8Array(sizeBytes);
  for (let offset = 0; offset < sizeBytes; offset += chunkBytes) {
    bytes.set(readScattered(backstore, offset, Math.min(chunkBytes, sizeBytes - offset), Math.min(chunkBytes, sizeBytes - offset)), offset);
  }
  return bytes;
}

/** Equal bytes, or a failure naming the first differing offset (not a 16 MiB diff). */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  if (Buffer.compare(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength), Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)) === 0) return;
  let first = 0;
  while (actual[first] === expected[first]) first += 1;
  throw new Error(`${label}: first difference at byte ${first} (${actual[first]} != ${expected[first]})`);
}

// --- hand edits of images (an independent minimal parser, not the code under test) ----------

export function getU32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(offset, false);
}

export function setU32(bytes: Uint8Array, offset: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(offset, value, false);
}

export function getU64(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(offset, false);
}

export function setU64(bytes: Uint8Array, offset: number, value: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(offset, value, false);
}

const OFFSET_MASK = 0x00ff_ffff_ffff_fe00n;

/** File offset of the (standard, 8-byte) L2 entry mapping guest `offsetBytes` of a qcow2 image. */
export function l2EntryOffset(image: Uint8Array, offsetBytes: number): number {
  const clusterBits = getU32(image, 20);
  const extended = getU32(image, 4) >= 3 && (getU64(image, 72) & 16n) !== 0n;
  const entryBytes = extended ? 16 : 8;
  const clusterIndex = Math.floor(offsetBytes / 2 ** clusterBits);
  const l2Entries = 2 ** clusterBits / entryBytes;
  const l1 = Number(getU64(image, 40));
  const l2 = Number(getU64(image, l1 + 8 * Math.floor(clusterIndex / l2Entries)) & OFFSET_MASK);
  if (l2 === 0) throw new Error(`no L2 table maps guest offset ${offsetBytes}`);
  return l2 + entryBytes * (clusterIndex % l2Entries);
}

/** File offset of the header extension of `type`, or -1. */
export function extensionOffset(image: Uint8Array, type: number): number {
  let offset = getU32(image, 4) >= 3 ? getU32(image, 100) : 72;
  while (offset + 8 <= image.byteLength) {
    const found = getU32(image, offset);
    if (found === type) return offset;
    if (found === 0) return -1;
    offset += 8 + Math.ceil(getU32(image, offset + 4) / 8) * 8;
  }
  return -1;
}
