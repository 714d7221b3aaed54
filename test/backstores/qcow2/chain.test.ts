// Backing chains: three deep with differing sizes, raw and qcow2 bases, relative names, the
// backing-format extension honoured or absent (probed), loops, the depth cap, untrusted names,
// dev_size against the virtual size, and GET LBA STATUS through the chain against qemu-img map.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { CHAIN_IMAGES_MAX } from "../../../backstores/qcow2/chain.ts";
import { EXT_BACKING_FORMAT } from "../../../backstores/qcow2/extensions.ts";
import { ImageRefusedError, openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { expectSameBytes, extensionOffset, ImageLab, MiB, readScattered, readThroughSim, setU32, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

async function expectChainReadsLikeQemu(name: string): Promise<void> {
  const reference = lab.reference(name);
  const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: reference.byteLength, readOnly: true });
  try {
    expectSameBytes(readScattered(backstore, 0, reference.byteLength, 4096), reference, `${name} (scattered)`);
    // The simulated device closes the backstore when it is done.
    expectSameBytes(await readThroughSim(backstore, reference.byteLength), reference, name);
  } finally {
    backstore.close();
  }
}

function refusal(name: string, options: { sizeBytes?: number; snapshot?: string } = {}): string {
  try {
    const backstore = openQcow2Backstore(lab.path(name), { sizeBytes: options.sizeBytes ?? 512, readOnly: true, snapshot: options.snapshot });
    backstore.close();
  } catch (error) {
    expect(error).toBeInstanceOf(ImageRefusedError);
    return (error as Error).message;
  }
  throw new Error(`${name} was opened`);
}

describe("backing chains read like qemu-img convert", () => {
  test("three deep, raw base with an odd size, a larger middle and a smaller top", async () => {
    lab.writeFile("c1-base.raw", sourceBytes(3 * MiB + 1000, 31));
    lab.qemuImg("create", "-f", "qcow2", "-b", "c1-base.raw", "-F", "raw", "c1-mid.qcow2", "8M");
    lab.qemuIo("qcow2", "c1-mid.qcow2", "write -P 0x21 1M 64k", "write -P 0x22 3M 2M", "write -z 2M 4k");
    lab.qemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "c1-mid.qcow2", "-F", "qcow2", "c1-top.qcow2", "6M");
    lab.qemuIo("qcow2", "c1-top.qcow2", "write -P 0x31 1040k 8k", "write -z -u 3M 64k", "write -P 0x32 5M 4k");
    await expectChainReadsLikeQemu("c1-top.qcow2");
  });

  test("three deep, compressed qcow2 base, a smaller middle and a larger top", async () => {
    lab.writeFile("c2-src.raw", sourceBytes(8 * MiB, 32));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "compression_type=zstd", "c2-src.raw", "c2-base.qcow2");
    lab.qemuImg("create", "-f", "qcow2", "-o", "extended_l2=on", "-b", "c2-base.qcow2", "-F", "qcow2", "c2-mid.qcow2", "4M");
    lab.qemuIo("qcow2", "c2-mid.qcow2", "write -P 0x41 100k 6k", "write -z 1M 2k");
    lab.qemuImg("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "c2-mid.qcow2", "-F", "qcow2", "c2-top.qcow2", "12M");
    lab.qemuIo("qcow2", "c2-top.qcow2", "write -P 0x51 3M 1536k", "write -P 0x52 10M 4k");
    await expectChainReadsLikeQemu("c2-top.qcow2");
  });

  test("relative backing names resolve against each overlay's directory", async () => {
    mkdirSync(lab.path("rel/a"), { recursive: true });
    mkdirSync(lab.path("rel/b"), { recursive: true });
    lab.writeFile("rel/b/base.raw", sourceBytes(2 * MiB, 33));
    lab.qemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "rel/b/mid.qcow2", "2M");
    lab.qemuIo("qcow2", "rel/b/mid.qcow2", "write -P 0x61 64k 64k");
    lab.qemuImg("create", "-f", "qcow2", "-b", "../b/mid.qcow2", "-F", "qcow2", "rel/a/top.qcow2", "2M");
    lab.qemuIo("qcow2", "rel/a/top.qcow2", "write -P 0x62 1M 4k");
    await expectChainReadsLikeQemu("rel/a/top.qcow2");
  });

  test("a raw backing file that starts with qcow2 magic is read as raw, never probed", async () => {
    // The base's bytes are another qcow2 image: read as a format, they would differ.
    lab.writeFile("magic-src.raw", sourceBytes(MiB, 34));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "magic-src.raw", "magic-base.raw");
    lab.qemuImg("create", "-f", "qcow2", "-b", "magic-base.raw", "-F", "raw", "magic-top.qcow2", "2M");
    lab.qemuIo("qcow2", "magic-top.qcow2", "write -P 0x71 0 4k");
    await expectChainReadsLikeQemu("magic-top.qcow2");
  });

  test("without a backing-format extension the backing file is probed (qcow2 and raw)", async () => {
    lab.writeFile("probe-src.raw", sourceBytes(2 * MiB, 35));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "probe-src.raw", "probe-base.qcow2");
    for (const [base, format] of [["probe-base.qcow2", "qcow2"], ["probe-src.raw", "raw"]] as const) {
      const top = `probe-top-${format}.qcow2`;
      lab.qemuImg("create", "-f", "qcow2", "-b", base, "-F", format, top, "2M");
      lab.qemuIo("qcow2", top, "write -P 0x72 8k 4k");
      // Turn the backing-format extension into an unknown one, which QEMU and we skip.
      const image = lab.readFile(top);
      setU32(image, extensionOffset(image, EXT_BACKING_FORMAT), 0x7e57_0001);
      lab.writeFile(top, image);
      await expectChainReadsLikeQemu(top);
    }
  });

  test("a qcow v1 overlay over a raw base", async () => {
    lab.writeFile("v1-base.raw", sourceBytes(2 * MiB, 36));
    lab.qemuImg("create", "-f", "qcow", "-b", "v1-base.raw", "-F", "raw", "v1-top.qcow", "3M");
    lab.qemuIo("qcow", "v1-top.qcow", "write -P 0x73 12k 8k", "write -P 0x74 2560k 4k");
    await expectChainReadsLikeQemu("v1-top.qcow");
  });
});

describe("backing chains that are refused", () => {
  test("an image that is its own backing file", () => {
    lab.qemuImg("create", "-f", "qcow2", "self.qcow2", "1M");
    lab.qemuImg("rebase", "-u", "-b", "self.qcow2", "-F", "qcow2", "self.qcow2");
    expect(refusal("self.qcow2")).toContain("backing chain loops");
  });

  test("two images backing each other, one through a hard link", () => {
    lab.qemuImg("create", "-f", "qcow2", "loop-a.qcow2", "1M");
    lab.qemuImg("create", "-f", "qcow2", "-b", "loop-a.qcow2", "-F", "qcow2", "loop-b.qcow2", "1M");
    lab.run(["ln", "loop-b.qcow2", "loop-b-link.qcow2"]);
    lab.qemuImg("rebase", "-u", "-b", "loop-b-link.qcow2", "-F", "qcow2", "loop-a.qcow2");
    expect(refusal("loop-b.qcow2")).toMatch(/backing chain loops: this is the same file as .*loop-b\.qcow2/);
  });

  test(`a chain deeper than ${CHAIN_IMAGES_MAX} images`, () => {
    writeFileSync(lab.path("deep-0.raw"), new Uint8Array(4096));
    let below = "deep-0.raw";
    let format = "raw";
    for (let depth = 1; depth <= CHAIN_IMAGES_MAX; depth += 1) {
      lab.qemuImg("create", "-f", "qcow2", "-b", below, "-F", format, `deep-${depth}.qcow2`, "4096");
      below = `deep-${depth}.qcow2`;
      format = "qcow2";
    }
    // deep-63 and the raw file under it are 64 images; deep-64 makes 65.
    openQcow2Backstore(lab.path(`deep-${CHAIN_IMAGES_MAX - 1}.qcow2`), { sizeBytes: 4096, readOnly: true }).close();
    expect(refusal(`deep-${CHAIN_IMAGES_MAX}.qcow2`, { sizeBytes: 4096 })).toContain(`backing chain deeper than ${CHAIN_IMAGES_MAX} images`);
  });

  test("a missing backing file, a protocol name and an unsupported backing format", () => {
    lab.qemuImg("create", "-f", "qcow2", "missing.qcow2", "1M");
    lab.qemuImg("rebase", "-u", "-b", "not-there.raw", "-F", "raw", "missing.qcow2");
    expect(refusal("missing.qcow2")).toMatch(/not-there\.raw: cannot open backing file: ENOENT/);
    lab.qemuImg("create", "-f", "qcow2", "nbd.qcow2", "1M");
    lab.qemuImg("rebase", "-u", "-b", "nbd://localhost/export", "-F", "raw", "nbd.qcow2");
    expect(refusal("nbd.qcow2")).toContain("names a protocol");
    lab.writeFile("vmdk-base.raw", new Uint8Array(MiB));
    lab.qemuImg("create", "-f", "qcow2", "vmdk.qcow2", "1M");
    lab.qemuImg("rebase", "-u", "-b", "vmdk-base.raw", "-F", "vmdk", "vmdk.qcow2");
    expect(refusal("vmdk.qcow2")).toContain("format 'vmdk' is not supported");
  });

  test("a top image that is not qcow", () => {
    lab.writeFile("plain.raw", new Uint8Array(MiB));
    expect(refusal("plain.raw")).toContain("not a qcow or qcow2 image");
  });
});

describe("dev_size against the virtual size", () => {
  test("a larger dev_size is refused; a smaller one is served with a warning", async () => {
    lab.writeFile("size-src.raw", sourceBytes(2 * MiB, 37));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "size-src.raw", "size.qcow2");
    expect(refusal("size.qcow2", { sizeBytes: 2 * MiB + 512 })).toContain("does not fit the image's virtual size 2097152");
    const backstore = openQcow2Backstore(lab.path("size.qcow2"), { sizeBytes: MiB, readOnly: true });
    try {
      expect(backstore.sizeBytes).toBe(MiB);
      expect(backstore.warnings.join()).toContain("dev_size 1048576 is smaller than the image's virtual size 2097152");
      expectSameBytes(await readThroughSim(backstore, MiB), lab.readFile("size-src.raw").subarray(0, MiB), "first MiB");
    } finally {
      backstore.close();
    }
  });
});

describe("GET LBA STATUS through the chain", () => {
  test("lbaStatus() agrees with qemu-img map's data flag sector by sector", () => {
    lab.writeFile("map-src.raw", sourceBytes(4 * MiB, 38));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-c", "map-src.raw", "map-base.qcow2");
    lab.qemuImg("create", "-f", "qcow2", "-b", "map-base.qcow2", "-F", "qcow2", "map-top.qcow2", "6M");
    lab.qemuIo("qcow2", "map-top.qcow2", "write -P 0x81 1M 64k", "write -z 2M 128k", "write -z -u 3M 64k", "write -P 0x82 5M 8k");
    const sizeBytes = 6 * MiB;
    const sectors = sizeBytes / 512;
    const expected = new Uint8Array(sectors);
    const map = JSON.parse(lab.qemuImg("map", "--output=json", "map-top.qcow2")) as { start: number; length: number; data: boolean }[];
    for (const extent of map) if (extent.data) expected.fill(1, extent.start / 512, (extent.start + extent.length) / 512);
    const actual = new Uint8Array(sectors);
    const backstore = openQcow2Backstore(lab.path("map-top.qcow2"), { sizeBytes, readOnly: true });
    try {
      for (let offset = 0; offset < sizeBytes; ) {
        const extent = backstore.lbaStatus(offset) as { mapped: boolean; lengthBytes: number };
        expect(extent.lengthBytes).toBeGreaterThan(0);
        if (extent.mapped) actual.fill(1, offset / 512, (offset + extent.lengthBytes) / 512);
        offset += extent.lengthBytes;
      }
    } finally {
      backstore.close();
    }
    expectSameBytes(actual, expected, "mapped sectors");
  });
});
