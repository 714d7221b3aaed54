// Broken tables and data found during a read answer MEDIUM ERROR (sense 3/11/00) with the LBA
// of the first byte that could not be read, where QEMU fails the read (EIO) or silently reads
// zeros past the end of the file; reads elsewhere in the image go on working.
import { afterAll, describe, expect, test } from "bun:test";
import { truncateSync } from "node:fs";
import { openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { SimDevice } from "../../../src/sim/sim-device.ts";
import * as cdbs from "../../support/cdbs.ts";
import { expectSameBytes, getU32, getU64, ImageLab, KiB, l2EntryOffset, MiB, readThroughSim, setU64, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

const CHECK_CONDITION = 2;
const MEDIUM_ERROR = 3;
const UNRECOVERED_READ_ERROR = 0x11;
const COPIED = 1n << 63n;
const COMPRESSED = 1n << 62n;
const CLUSTER = 64 * KiB;

function convert(name: string, options: string[]): void {
  lab.writeFile(`${name}.src`, sourceBytes(2 * MiB, 51));
  lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", ...options, `${name}.src`, name);
}
convert("plain.qcow2", []);
convert("deflate.qcow2", ["-c"]);
convert("zstd.qcow2", ["-c", "-o", "compression_type=zstd"]);
convert("v2.qcow2", ["-o", "compat=0.10"]);
convert("xl2.qcow2", ["-o", "extended_l2=on"]);
convert("ext.qcow2", ["-o", "data_file=ext.data"]);

/** INFORMATION of fixed-format sense (VALID set), as the SCSI layer reports the failing LBA. */
function senseInformation(sense: Uint8Array): number | undefined {
  if ((sense[0]! & 0x80) === 0) return undefined;
  return new DataView(sense.buffer, sense.byteOffset).getUint32(3, false);
}

function patched(from: string, name: string, patch: (image: Uint8Array) => void): string {
  const image = lab.readFile(from);
  patch(image);
  lab.writeFile(name, image);
  return name;
}

/** READ(16) of [offset, offset + length) fails with MEDIUM ERROR at `errorOffset`; a read at `readableOffset` still works. */
async function expectMediumError(name: string, offset: number, length: number, errorOffset: number, readableOffset: number | null = 0): Promise<void> {
  const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: 2 * MiB, readOnly: true });
  const device = new SimDevice({ backstore, sizeBytes: 2 * MiB, blockSizeBytes: 512 });
  try {
    const failed = await device.submit(cdbs.read16(offset / 512, length / 512), { dataInBytes: length });
    expect(failed.status).toBe(CHECK_CONDITION);
    expect(cdbs.senseTriple(failed.sense)).toEqual([MEDIUM_ERROR, UNRECOVERED_READ_ERROR, 0]);
    expect(senseInformation(failed.sense)).toBe(errorOffset / 512);
    if (readableOffset !== null) {
      const fine = await device.submit(cdbs.read16(readableOffset / 512, 128), { dataInBytes: 64 * KiB });
      expect(fine.status).toBe(0);
    }
  } finally {
    await device.close();
  }
}

/** What QEMU does with the same image: true when `qemu-img convert` fails. */
function qemuFails(name: string): boolean {
  return Bun.spawnSync(["qemu-img", "convert", "-U", "-O", "raw", name, `${name}.out`], { cwd: lab.dir, stdout: "pipe", stderr: "pipe" }).exitCode !== 0;
}

describe("metadata that breaks during a read answers MEDIUM ERROR", () => {
  test("an L2 table past the end of the file (QEMU reads zeros)", async () => {
    const name = patched("plain.qcow2", "l2-eof.qcow2", (i) => setU64(i, Number(getU64(i, 40)), COPIED | (1n << 30n)));
    // One L2 table maps the whole image: no read can succeed.
    await expectMediumError(name, 4 * KiB, 8 * KiB, 4 * KiB, null);
    expect(qemuFails(name)).toBe(false);
  });

  test("an unaligned L2 table (QEMU: EIO)", async () => {
    const name = patched("plain.qcow2", "l2-unaligned.qcow2", (i) => setU64(i, Number(getU64(i, 40)), getU64(i, Number(getU64(i, 40))) + 512n));
    await expectMediumError(name, 0, 4 * KiB, 0, null);
    expect(qemuFails(name)).toBe(true);
  });

  test("a data cluster past the end of the file (QEMU reads zeros)", async () => {
    const name = patched("plain.qcow2", "data-eof.qcow2", (i) => setU64(i, l2EntryOffset(i, 3 * CLUSTER), COPIED | (1n << 30n)));
    await expectMediumError(name, 3 * CLUSTER - 32 * KiB, 64 * KiB, 3 * CLUSTER);
    expect(qemuFails(name)).toBe(false);
  });

  test("an unaligned data cluster (QEMU: EIO)", async () => {
    const name = patched("plain.qcow2", "data-unaligned.qcow2", (i) => setU64(i, l2EntryOffset(i, 3 * CLUSTER), getU64(i, l2EntryOffset(i, 3 * CLUSTER)) + 512n));
    await expectMediumError(name, 3 * CLUSTER + 4 * KiB, 4 * KiB, 3 * CLUSTER + 4 * KiB);
    expect(qemuFails(name)).toBe(true);
  });

  test("a file cut short in the middle of a data cluster reports the first missing byte", async () => {
    const map = JSON.parse(lab.qemuImg("map", "--output=json", "plain.qcow2")) as { start: number; length: number; offset?: number }[];
    const last = map.filter((extent) => extent.offset !== undefined).sort((a, b) => b.offset! + b.length - (a.offset! + a.length))[0]!;
    const fileEnd = last.offset! + last.length;
    lab.writeFile("cut.qcow2", lab.readFile("plain.qcow2").subarray(0, fileEnd));
    truncateSync(lab.path("cut.qcow2"), fileEnd - 24 * KiB);
    const lastGuestByte = last.start + last.length;
    await expectMediumError("cut.qcow2", lastGuestByte - 64 * KiB, 64 * KiB, lastGuestByte - 24 * KiB);
  });

  test("a zero flag in a v2 image fails, with or without a cluster offset (QEMU: EIO)", async () => {
    for (const [name, entry] of [["v2-zero.qcow2", () => 1n], ["v2-zero-alloc.qcow2", (old: bigint) => old | 1n]] as const) {
      patched("v2.qcow2", name, (i) => setU64(i, l2EntryOffset(i, 2 * CLUSTER), entry(getU64(i, l2EntryOffset(i, 2 * CLUSTER)))));
      await expectMediumError(name, 2 * CLUSTER, 4 * KiB, 2 * CLUSTER);
      expect(qemuFails(name)).toBe(true);
    }
  });

  test("extended L2 entries with a subcluster both allocated and zero, or allocation bits without a cluster", async () => {
    const both = patched("xl2.qcow2", "xl2-both.qcow2", (i) => {
      const entry = l2EntryOffset(i, CLUSTER);
      const bitmap = getU64(i, entry + 8);
      setU64(i, entry + 8, bitmap | ((bitmap & 0xffff_ffffn) << 32n));
    });
    await expectMediumError(both, CLUSTER, 4 * KiB, CLUSTER);
    expect(qemuFails(both)).toBe(true);
    const orphan = patched("xl2.qcow2", "xl2-orphan.qcow2", (i) => setU64(i, l2EntryOffset(i, CLUSTER), 0n));
    await expectMediumError(orphan, CLUSTER, 4 * KiB, CLUSTER);
    expect(qemuFails(orphan)).toBe(true);
  });

  test("a compressed cluster in an image with an external data file", async () => {
    const name = patched("ext.qcow2", "ext-compressed.qcow2", (i) => setU64(i, l2EntryOffset(i, CLUSTER), COMPRESSED | 4096n));
    await expectMediumError(name, CLUSTER, 4 * KiB, CLUSTER);
    expect(qemuFails(name)).toBe(true);
  });
});

describe("compressed clusters that cannot be decompressed answer MEDIUM ERROR", () => {
  /** The host offset of the compressed data of the cluster at guest `offset` (64 KiB clusters). */
  function compressedOffset(image: Uint8Array, offset: number): number {
    const entry = getU64(image, l2EntryOffset(image, offset));
    expect(entry & COMPRESSED).toBe(COMPRESSED);
    return Number(entry & ((1n << 54n) - 1n));
  }

  for (const format of ["deflate", "zstd"]) {
    test(`${format}: garbage instead of the compressed stream (QEMU: EIO)`, async () => {
      const name = patched(`${format}.qcow2`, `${format}-garbage.qcow2`, (i) => {
        const start = compressedOffset(i, 5 * CLUSTER);
        i.fill(0xff, start, start + 64);
      });
      await expectMediumError(name, 5 * CLUSTER + 4 * KiB, 8 * KiB, 5 * CLUSTER + 4 * KiB);
      expect(qemuFails(name)).toBe(true);
    });

    test(`${format}: a descriptor pointing past the end of the file`, async () => {
      const name = patched(`${format}.qcow2`, `${format}-eof.qcow2`, (i) => {
        const entry = l2EntryOffset(i, 5 * CLUSTER);
        setU64(i, entry, (getU64(i, entry) & ~((1n << 54n) - 1n)) | BigInt(i.byteLength + 4096));
      });
      await expectMediumError(name, 5 * CLUSTER, 4 * KiB, 5 * CLUSTER);
      expect(qemuFails(name)).toBe(true);
    });
  }

  test("an image with a broken cluster still reads everywhere else like QEMU's image of it", async () => {
    const name = "deflate-garbage.qcow2";
    const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: 2 * MiB, readOnly: true });
    const reference = lab.reference("deflate.qcow2");
    try {
      for (let cluster = 0; cluster < 32; cluster += 1) {
        if (cluster === 5) continue;
        const bytes = new Uint8Array(CLUSTER);
        const { MappedBuffer } = await import("../support.ts");
        const buffer = new MappedBuffer(CLUSTER);
        backstore.read(cluster * CLUSTER, CLUSTER, buffer.segments(CLUSTER), 0);
        bytes.set(buffer.bytes);
        buffer.release();
        expectSameBytes(bytes, reference.subarray(cluster * CLUSTER, (cluster + 1) * CLUSTER), `cluster ${cluster}`);
      }
    } finally {
      backstore.close();
    }
    expect(getU32(lab.readFile(name), 0)).toBe(0x514649fb);
  });
});
