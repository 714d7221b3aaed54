// Compressed clusters QEMU reads but qemu-img never writes: zstd clusters of several frames
// with a skippable frame between them, a zstd frame that does not declare its size, a deflate
// stream that runs on past the cluster. Each is spliced into a real image and the whole image
// is compared with qemu-img convert. Then the decompressors' rules on their own.
import { afterAll, describe, expect, test } from "bun:test";
import { deflateRawSync } from "node:zlib";
import { CompressedClusterReader, inflateCluster, zstdCluster } from "../../../backstores/qcow2/compressed.ts";
import { openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { walkFrame } from "../../../backstores/qcow2/zstd-frames.ts";
import { expectSameBytes, getU32, ImageLab, KiB, l2EntryOffset, MiB, readThroughSim, setU64, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

const CLUSTER = 64 * KiB;
const CLUSTER_BITS = 16;
const SECTOR = 512;
const COMPRESSED = 1n << 62n;
/** Bytes of junk before a spliced stream, so it starts mid-sector as QEMU's often do. */
const LEAD_BYTES = 100;

lab.writeFile("src.raw", sourceBytes(2 * MiB, 61));
lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "compression_type=zstd", "src.raw", "zstd.qcow2");
lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-c", "src.raw", "deflate.qcow2");
const source = lab.readFile("src.raw");

/** Appends `stream` to `from` and points the L2 entry of guest cluster `cluster` at it. */
function splice(from: string, name: string, cluster: number, stream: Uint8Array): string {
  const image = lab.readFile(from);
  const start = image.byteLength + LEAD_BYTES;
  const sectors = Math.ceil(((start % SECTOR) + stream.byteLength) / SECTOR);
  const end = Math.ceil((start + stream.byteLength) / SECTOR) * SECTOR;
  const spliced = new Uint8Array(end);
  spliced.set(image);
  spliced.fill(0x5a, image.byteLength, start);
  spliced.set(stream, start);
  spliced.fill(0xa5, start + stream.byteLength); // trailing junk inside the last sector
  const offsetBits = BigInt(62 - (CLUSTER_BITS - 8));
  setU64(spliced, l2EntryOffset(spliced, cluster * CLUSTER), COMPRESSED | (BigInt(sectors - 1) << offsetBits) | BigInt(start));
  lab.writeFile(name, spliced);
  return name;
}

async function expectReadsLikeQemu(name: string): Promise<void> {
  const reference = lab.reference(name);
  const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: reference.byteLength, readOnly: true });
  expectSameBytes(await readThroughSim(backstore, reference.byteLength), reference, name);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.byteLength;
  }
  return bytes;
}

function skippableFrame(payload: number[]): Uint8Array {
  const frame = new Uint8Array(8 + payload.length);
  new DataView(frame.buffer).setUint32(0, 0x184d2a53, true);
  new DataView(frame.buffer).setUint32(4, payload.length, true);
  frame.set(payload, 8);
  return frame;
}

/** A zstd frame for `data` whose header gives a 64 KiB window and no content size. */
function frameWithoutContentSize(data: Uint8Array): Uint8Array {
  const original = Bun.zstdCompressSync(data);
  const descriptor = original[4]!;
  const singleSegment = (descriptor & 0x20) !== 0;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
  const headerBytes = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + fcsBytes;
  const windowDescriptor = (CLUSTER_BITS - 10) << 3;
  const header = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, descriptor & 0x04, windowDescriptor]);
  const frame = concat(header, original.subarray(headerBytes));
  expect(walkFrame(frame, 0)?.contentBytes).toBeUndefined();
  return frame;
}

describe("compressed clusters written by hand read like QEMU reads them", () => {
  const cluster = 7;
  const data = () => source.subarray(cluster * CLUSTER, (cluster + 1) * CLUSTER);

  test("zstd: three frames and a skippable frame for one cluster", async () => {
    const third = Math.floor(CLUSTER / 3);
    const stream = concat(
      Bun.zstdCompressSync(data().subarray(0, third)),
      skippableFrame([1, 2, 3, 4, 5]),
      Bun.zstdCompressSync(data().subarray(third, 2 * third)),
      Bun.zstdCompressSync(data().subarray(2 * third)),
    );
    await expectReadsLikeQemu(splice("zstd.qcow2", "zstd-frames.qcow2", cluster, stream));
  });

  test("zstd: a frame that does not declare its content size", async () => {
    await expectReadsLikeQemu(splice("zstd.qcow2", "zstd-no-size.qcow2", cluster, frameWithoutContentSize(data())));
  });

  test("deflate: a stream that goes on past the cluster keeps its first cluster", async () => {
    const longer = concat(data(), source.subarray(0, 20 * KiB));
    const stream = deflateRawSync(longer, { windowBits: 12 });
    await expectReadsLikeQemu(splice("deflate.qcow2", "deflate-long.qcow2", cluster, stream));
  });

  test("deflate: a stream copying from 32 KiB back (beyond a 4 KiB window)", async () => {
    const half = data().subarray(0, CLUSTER / 2);
    const stream = deflateRawSync(concat(half, half), { windowBits: 15 });
    await expectReadsLikeQemu(splice("deflate.qcow2", "deflate-far.qcow2", cluster, stream));
  });

  test("deflate: a stream cut at the cluster's end, followed by junk", async () => {
    const stream = deflateRawSync(data(), { windowBits: 12 });
    await expectReadsLikeQemu(splice("deflate.qcow2", "deflate-exact.qcow2", cluster, concat(stream, new Uint8Array(300).fill(0xee))));
  });
});

describe("decompressors give exactly one cluster or a reason", () => {
  const cluster = sourceBytes(CLUSTER, 62);

  test("zstd: a frame larger than the rest of the cluster is refused", () => {
    expect(zstdCluster(Bun.zstdCompressSync(concat(cluster, cluster.subarray(0, 512))), CLUSTER)).toContain("overruns the cluster");
  });

  test("zstd: frames that end before the cluster is full are refused", () => {
    expect(zstdCluster(Bun.zstdCompressSync(cluster.subarray(0, CLUSTER / 2)), CLUSTER)).toContain("no whole frame");
  });

  test("zstd: bytes after the frames that fill the cluster are ignored", () => {
    const result = zstdCluster(concat(Bun.zstdCompressSync(cluster), new Uint8Array(1000).fill(0xff)), CLUSTER);
    expect(result).toBeInstanceOf(Uint8Array);
    expectSameBytes(result as Uint8Array, cluster, "cluster");
  });

  test("zstd: a frame header cut short, a reserved bit, a dictionary are not frames", () => {
    const frame = Bun.zstdCompressSync(cluster);
    expect(walkFrame(frame.subarray(0, 5), 0)).toBeUndefined();
    expect(walkFrame(frame.subarray(0, frame.byteLength - 1), 0)).toBeUndefined();
    const reserved = frame.slice();
    reserved[4]! |= 0x08;
    expect(walkFrame(reserved, 0)).toBeUndefined();
    const dictionary = concat(Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x21, 0x07]), frame.subarray(6));
    expect(walkFrame(dictionary, 0)).toBeUndefined();
  });

  test("zstd: a frame without a size whose blocks could far exceed the cluster is refused before decoding", () => {
    // Three RLE blocks of 128 KiB from 12 bytes (a 2 MiB window allows them): a bomb.
    const rleBlock = (last: number) => [...blockHeader(last, 1, 128 * KiB), 0x00];
    const bomb = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (21 - 10) << 3, ...rleBlock(0), ...rleBlock(0), ...rleBlock(1)]);
    expect(walkFrame(bomb, 0)?.outputBytesMax).toBe(3 * 128 * KiB);
    expect(zstdCluster(bomb, CLUSTER)).toContain("far more than");
    // One such block is decoded (a cluster plus under one block at most) and then refused.
    const one = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (21 - 10) << 3, ...rleBlock(1)]);
    expect(zstdCluster(one, CLUSTER)).toContain("more than the 65536 left");
  });

  test("deflate: a stream that ends before the cluster is full is refused", () => {
    expect(inflateCluster(deflateRawSync(cluster.subarray(0, 1000), { windowBits: 12 }), CLUSTER)).toContain("ends after 1000");
  });

  test("deflate: distances up to 32 KiB back inside the cluster are fine, as in QEMU's one-buffer inflate", () => {
    // windowBits -12 bounds the sliding window, but QEMU inflates the whole cluster into one
    // buffer, where zlib may copy from anywhere already written.
    const random = crypto.getRandomValues(new Uint8Array(CLUSTER / 2));
    const far = concat(random, random);
    expectSameBytes(inflateCluster(deflateRawSync(far, { windowBits: 15 }), CLUSTER) as Uint8Array, far, "cluster");
  });

  test("a decompressed cluster is cached: 16 reads of one cluster decompress it once", () => {
    const image = lab.readFile("deflate.qcow2");
    const { ImageFile } = require("../../../backstores/qcow2/image-file.ts") as typeof import("../../../backstores/qcow2/image-file.ts");
    const file = ImageFile.open(lab.path("deflate.qcow2"), "image");
    const reader = new CompressedClusterReader(file, CLUSTER, 2 * CLUSTER, inflateCluster, 4 * CLUSTER);
    const entryOffset = l2EntryOffset(image, 7 * CLUSTER);
    const entry = new DataView(image.buffer).getBigUint64(entryOffset, false);
    const offset = Number(entry & ((1n << 54n) - 1n));
    const sectors = Number((entry >> 54n) & 0xffn) + 1;
    for (let read = 0; read < 16; read += 1) expectSameBytes(reader.cluster(offset, sectors * SECTOR - (offset % SECTOR), 0), source.subarray(7 * CLUSTER, 8 * CLUSTER), "cluster 7");
    expect(reader.decompressions).toBe(1);
    file.close();
    expect(getU32(image, 0)).toBe(0x514649fb);
  });
});

/** A zstd block header: last flag, type (0 raw, 1 RLE, 2 compressed), size (little-endian, 3 bytes). */
function blockHeader(last: number, type: number, size: number): number[] {
  const value = last | (type << 1) | (size << 3);
  return [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff];
}
