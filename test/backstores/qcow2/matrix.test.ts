// Every byte the reader returns, through the simulator, equals `qemu-img convert -U -O raw` of
// the same image, across the feature matrix: versions, cluster sizes, deflate and zstd, zero
// clusters of both forms, extended L2 subclusters, external data files, preallocated metadata,
// qcow v1 — each read whole in 64 KiB commands and again in random scattered pieces. And the
// device is read-only: writes answer DATA PROTECT, MODE SENSE shows WP.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { BackstoreError } from "../../../backstores/types.ts";
import { SimDevice } from "../../../src/sim/sim-device.ts";
import * as cdbs from "../../support/cdbs.ts";
import { expectSameBytes, ImageLab, KiB, MiB, prng, readAllDirect, readScattered, readThroughSim, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

const RANDOM_READS = 40;
const CHECK_CONDITION = 2;
const DATA_PROTECT = 7;
const WRITE_PROTECTED = 0x27;
/** MODE SENSE header, device-specific parameter: write protected. */
const WP_BIT = 0x80;

/** A qcow2 (or qcow) image converted from seeded source data. */
function converted(name: string, sizeBytes: number, seed: number, options: string[], format = "qcow2"): string {
  lab.writeFile(`${name}.src`, sourceBytes(sizeBytes, seed));
  lab.qemuImg("convert", "-f", "raw", "-O", format, ...options, `${name}.src`, name);
  return name;
}

/** Reads the image through the simulator and at random offsets, comparing with QEMU. */
async function expectReadsLikeQemu(name: string, seed: number): Promise<void> {
  const reference = lab.reference(name);
  const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: reference.byteLength, readOnly: true });
  expect(backstore.warnings).toEqual([]);
  try {
    const random = prng(seed);
    for (let read = 0; read < RANDOM_READS; read += 1) {
      const sectors = reference.byteLength / 512;
      const lengthSectors = 1 + Math.floor(random() * Math.min(512, sectors));
      const start = Math.floor(random() * (sectors - lengthSectors + 1));
      const piece = [512, 4096, 65536][read % 3]!;
      const actual = readScattered(backstore, start * 512, lengthSectors * 512, piece);
      expectSameBytes(actual, reference.subarray(start * 512, (start + lengthSectors) * 512), `${name} sectors ${start}+${lengthSectors} (seed ${seed})`);
    }
    expectSameBytes(readAllDirect(backstore, reference.byteLength), reference, `${name} read directly`);
    expectSameBytes(await readThroughSim(backstore, reference.byteLength), reference, `${name} through the simulator`);
  } finally {
    backstore.close();
  }
}

describe("qcow2 images converted from raw read like qemu-img convert", () => {
  const rows: [string, number, string[]][] = [
    ["v2 (compat=0.10), 64 KiB clusters", 8 * MiB, ["-o", "compat=0.10"]],
    ["v3, 512 B clusters", 4 * MiB, ["-o", "compat=1.1,cluster_size=512"]],
    ["v3, 2 MiB clusters", 8 * MiB, ["-o", "cluster_size=2M"]],
    ["v3, 4 KiB clusters, deflate", 4 * MiB, ["-c", "-o", "cluster_size=4096,compression_type=zlib"]],
    ["v3, 512 B clusters, deflate", 2 * MiB, ["-c", "-o", "cluster_size=512"]],
    ["v2, 16 KiB clusters, deflate", 4 * MiB, ["-c", "-o", "compat=0.10,cluster_size=16384"]],
    ["v3, 64 KiB clusters, zstd", 8 * MiB, ["-c", "-o", "compression_type=zstd"]],
    ["v3, 2 MiB clusters, zstd", 8 * MiB, ["-c", "-o", "cluster_size=2M,compression_type=zstd"]],
    ["v3, 1 KiB clusters, zstd", 2 * MiB, ["-c", "-o", "cluster_size=1024,compression_type=zstd"]],
    ["v3, extended L2, 32 KiB clusters", 4 * MiB, ["-o", "extended_l2=on,cluster_size=32768"]],
    ["v3, extended L2, deflate", 4 * MiB, ["-c", "-o", "extended_l2=on"]],
    ["size not a multiple of the cluster size", 5 * MiB + 7 * 512, ["-c", "-o", "cluster_size=65536"]],
  ];
  rows.forEach(([label, sizeBytes, options], index) => {
    test(label, async () => {
      const name = converted(`m${index}.qcow2`, sizeBytes, 100 + index, options);
      await expectReadsLikeQemu(name, 200 + index);
    });
  });
});

describe("images written with qemu-io read like qemu-img convert", () => {
  test("zero clusters of both forms hide the backing file", async () => {
    converted("zbase.qcow2", 4 * MiB, 11, []);
    lab.qemuImg("create", "-f", "qcow2", "-b", "zbase.qcow2", "-F", "qcow2", "zero.qcow2", "4M");
    // 1M: plain zero (no cluster); 2M: zero with its cluster kept; 2M+64k: zero, unmapped.
    lab.qemuIo("qcow2", "zero.qcow2", "write -P 0x33 2M 192k", "write -z 2M 64k", "write -z -u 2112k 64k", "write -z 1M 64k", "write -z 3M 4k");
    await expectReadsLikeQemu("zero.qcow2", 12);
  });

  test("extended L2 subclusters: allocated, zero and from the backing file in one cluster", async () => {
    converted("xbase.qcow2", 4 * MiB, 13, ["-c"]);
    lab.qemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", "xbase.qcow2", "-F", "qcow2", "xl2.qcow2", "4M");
    lab.qemuIo("qcow2", "xl2.qcow2", "write -P 0x44 4k 4k", "write -z 70k 2k", "write -z -u 134k 4k", "write -P 0x55 300k 100k", "write -z 1M 130k", "write -P 0x66 2M 2k");
    await expectReadsLikeQemu("xl2.qcow2", 14);
  });

  test("external data file", async () => {
    lab.qemuImg("create", "-f", "qcow2", "-o", "data_file=ext.data", "ext.qcow2", "4M");
    lab.qemuIo("qcow2", "ext.qcow2", "write -P 0x11 0 64k", "write -P 0x22 1M 200k", "write -z 1088k 8k", "write -P 0x23 3M 4k");
    await expectReadsLikeQemu("ext.qcow2", 15);
  });

  test("raw external data file converted from raw", async () => {
    converted("extraw.qcow2", 4 * MiB, 16, ["-o", "data_file=extraw.data,data_file_raw=on"]);
    await expectReadsLikeQemu("extraw.qcow2", 17);
  });

  test("preallocated metadata reads the sparse file's zeros", async () => {
    lab.qemuImg("create", "-f", "qcow2", "-o", "preallocation=metadata,cluster_size=4096", "prealloc.qcow2", "4M");
    lab.qemuIo("qcow2", "prealloc.qcow2", "write -P 0x77 12k 20k", "write -P 0x78 3M 1k");
    await expectReadsLikeQemu("prealloc.qcow2", 18);
  });

  test("v2 image whose zero writes became data over a backing file", async () => {
    converted("v2base.qcow2", 4 * MiB, 19, ["-o", "compat=0.10"]);
    lab.qemuImg("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "v2base.qcow2", "-F", "qcow2", "v2top.qcow2", "4M");
    lab.qemuIo("qcow2", "v2top.qcow2", "write -z 64k 64k", "write -P 0x12 1M 4k");
    await expectReadsLikeQemu("v2top.qcow2", 20);
  });
});

describe("qcow v1 reads like qemu-img convert", () => {
  test("plain clusters converted from raw", async () => {
    converted("v1.qcow", 4 * MiB, 21, [], "qcow");
    await expectReadsLikeQemu("v1.qcow", 22);
  });

  test("compressed and plain clusters written with qemu-io", async () => {
    lab.qemuImg("create", "-f", "qcow", "v1c.qcow", "2M");
    const random = prng(23);
    const commands: string[] = [];
    for (let cluster = 0; cluster < 48; cluster += 1) {
      if (random() < 0.3) continue;
      const chunk = lab.path(`v1c-chunk-${cluster}`);
      writeFileSync(chunk, sourceBytes(4 * KiB, 300 + cluster));
      commands.push(`write ${random() < 0.6 ? "-c " : ""}-s ${chunk} ${cluster * 4 * KiB} 4k`);
    }
    commands.push("write -c -P 0x5a 1M 4k", "write -c -P 0 1028k 4k");
    lab.qemuIo("qcow", "v1c.qcow", ...commands);
    await expectReadsLikeQemu("v1c.qcow", 24);
  });
});

describe("the device is read-only", () => {
  test("WRITE answers DATA PROTECT, MODE SENSE shows WP, the store refuses every change", async () => {
    const name = converted("ro.qcow2", MiB, 25, []);
    const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: MiB, readOnly: true });
    expect(backstore.capabilities.readOnly).toBe(true);
    for (const change of [() => backstore.unmap(0, 4096), () => backstore.writeZeroes(0, 4096, true, false)]) {
      expect(change).toThrow(BackstoreError);
    }
    const device = new SimDevice({ backstore, sizeBytes: MiB, blockSizeBytes: 512 });
    try {
      const written = await device.submit(cdbs.write10(8, 8), { dataOut: new Uint8Array(4096) });
      expect(written.status).toBe(CHECK_CONDITION);
      expect(cdbs.senseTriple(written.sense)).toEqual([DATA_PROTECT, WRITE_PROTECTED, 0]);
      const modeSense = await device.submit(Uint8Array.from([0x1a, 0, 0x3f, 0, 255, 0]), { dataInBytes: 255 });
      expect(modeSense.status).toBe(0);
      expect(modeSense.dataIn[2]! & WP_BIT).toBe(WP_BIT);
    } finally {
      await device.close();
    }
  });
});
