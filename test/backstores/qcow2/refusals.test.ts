// Hand-broken headers and tables, one per refusal case: each is refused at open with a message
// naming the reason, and where QEMU refuses the same image (qemu-img convert fails), so do we.
import { afterAll, describe, expect, test } from "bun:test";
import { EXT_BACKING_FORMAT, EXT_FEATURE_TABLE } from "../../../backstores/qcow2/extensions.ts";
import { ImageRefusedError, openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { extensionOffset, getU32, getU64, ImageLab, MiB, setU32, setU64 } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

// Field offsets of the qcow2 header (qcow2.rst "Header").
const VERSION = 4;
const BACKING_FILE_OFFSET = 8;
const BACKING_FILE_SIZE = 16;
const CLUSTER_BITS = 20;
const SIZE = 24;
const CRYPT_METHOD = 32;
const L1_SIZE = 36;
const L1_TABLE_OFFSET = 40;
const REFCOUNT_TABLE_OFFSET = 48;
const REFCOUNT_TABLE_CLUSTERS = 56;
const NB_SNAPSHOTS = 60;
const SNAPSHOTS_OFFSET = 64;
const INCOMPATIBLE = 72;
const AUTOCLEAR = 88;
const REFCOUNT_ORDER = 96;
const HEADER_LENGTH = 100;
const COMPRESSION_TYPE = 104;

/** The images the cases start from, made once. */
lab.qemuImg("create", "-f", "qcow2", "v3.qcow2", "4M");
lab.qemuIo("qcow2", "v3.qcow2", "write -P 0x11 0 64k");
lab.qemuImg("create", "-f", "qcow2", "-o", "cluster_size=8192", "small-clusters.qcow2", "4M");
lab.qemuImg("create", "-f", "qcow2", "-o", "cluster_size=2M", "big-clusters.qcow2", "4M");
lab.qemuImg("create", "-f", "qcow2", "snapshotted.qcow2", "4M");
lab.qemuImg("snapshot", "-c", "one", "snapshotted.qcow2");
lab.qemuImg("create", "-f", "qcow2", "-b", "v3.qcow2", "-F", "qcow2", "overlay.qcow2", "4M");
lab.qemuImg("create", "-f", "qcow", "v1.qcow", "4M");

interface Case {
  name: string;
  from: string;
  patch: (image: Uint8Array) => void;
  /** The refusal message contains this. */
  message: string | RegExp;
  /** QEMU refuses it too (checked with qemu-img convert); false where QEMU reads on (zeros past EOF…). */
  qemuRefuses: boolean;
}

const cases: Case[] = [
  { name: "qcow2 version 4", from: "v3.qcow2", patch: (i) => setU32(i, VERSION, 4), message: "unsupported qcow2 version 4", qemuRefuses: true },
  { name: "qcow2 version 0", from: "v3.qcow2", patch: (i) => setU32(i, VERSION, 0), message: "unsupported qcow2 version 0", qemuRefuses: false },
  { name: "cluster_bits 8", from: "v3.qcow2", patch: (i) => setU32(i, CLUSTER_BITS, 8), message: "unsupported cluster size: 2^8", qemuRefuses: true },
  { name: "cluster_bits 22", from: "v3.qcow2", patch: (i) => setU32(i, CLUSTER_BITS, 22), message: "unsupported cluster size: 2^22", qemuRefuses: true },
  { name: "header_length below 104", from: "v3.qcow2", patch: (i) => setU32(i, HEADER_LENGTH, 96), message: "qcow2 header too short", qemuRefuses: true },
  { name: "header_length past the cluster", from: "v3.qcow2", patch: (i) => setU32(i, HEADER_LENGTH, 65536 + 8), message: "qcow2 header exceeds cluster size", qemuRefuses: true },
  { name: "backing file offset past cluster 0", from: "v3.qcow2", patch: (i) => setU64(i, BACKING_FILE_OFFSET, 65537n), message: "invalid backing file offset", qemuRefuses: true },
  {
    name: "a header extension running past its end",
    from: "v3.qcow2",
    patch: (i) => setU32(i, extensionOffset(i, EXT_FEATURE_TABLE) + 4, 65536),
    message: /header extension 0x6803f857 too large/,
    qemuRefuses: true,
  },
  { name: "an unknown incompatible feature bit", from: "v3.qcow2", patch: (i) => setU64(i, INCOMPATIBLE, 1n << 5n), message: "unsupported qcow2 feature(s): unknown incompatible feature bit 5", qemuRefuses: true },
  {
    name: "an unknown incompatible feature named by the feature table",
    from: "v3.qcow2",
    patch: (i) => {
      setU64(i, INCOMPATIBLE, 1n << 9n);
      const entry = extensionOffset(i, EXT_FEATURE_TABLE) + 8; // first entry: type 0 (incompatible), bit 0
      i[entry + 1] = 9;
      i.set(new TextEncoder().encode("time travel\0"), entry + 2);
    },
    message: "unsupported qcow2 feature(s): time travel",
    qemuRefuses: true,
  },
  { name: "extended L2 with 8 KiB clusters", from: "small-clusters.qcow2", patch: (i) => setU64(i, INCOMPATIBLE, 1n << 4n), message: "unsupported subcluster size: 256", qemuRefuses: true },
  { name: "refcount_order 7", from: "v3.qcow2", patch: (i) => setU32(i, REFCOUNT_ORDER, 7), message: "reference count entry width too large", qemuRefuses: true },
  { name: "legacy AES encryption", from: "v3.qcow2", patch: (i) => setU32(i, CRYPT_METHOD, 1), message: "encrypted image (legacy AES) is not supported", qemuRefuses: false },
  { name: "LUKS encryption", from: "v3.qcow2", patch: (i) => setU32(i, CRYPT_METHOD, 2), message: "encrypted image (LUKS) is not supported", qemuRefuses: true },
  { name: "an unknown encryption method", from: "v3.qcow2", patch: (i) => setU32(i, CRYPT_METHOD, 3), message: "unsupported encryption method: 3", qemuRefuses: true },
  { name: "no refcount table", from: "v3.qcow2", patch: (i) => setU32(i, REFCOUNT_TABLE_CLUSTERS, 0), message: "does not contain a reference count table", qemuRefuses: true },
  { name: "a huge refcount table", from: "v3.qcow2", patch: (i) => setU32(i, REFCOUNT_TABLE_CLUSTERS, 0x1000_0000), message: "reference count table too large", qemuRefuses: true },
  { name: "an unaligned refcount table", from: "v3.qcow2", patch: (i) => setU64(i, REFCOUNT_TABLE_OFFSET, getU64(i, REFCOUNT_TABLE_OFFSET) + 8n), message: "invalid reference count table offset", qemuRefuses: true },
  { name: "too many snapshots", from: "v3.qcow2", patch: (i) => setU32(i, NB_SNAPSHOTS, 65537), message: "too many snapshots", qemuRefuses: true },
  { name: "an unaligned snapshot table", from: "snapshotted.qcow2", patch: (i) => setU64(i, SNAPSHOTS_OFFSET, getU64(i, SNAPSHOTS_OFFSET) + 8n), message: "invalid snapshot table offset", qemuRefuses: true },
  { name: "an L1 table over 32 MiB", from: "v3.qcow2", patch: (i) => setU32(i, L1_SIZE, 0x40_0001), message: "active L1 table too large", qemuRefuses: true },
  { name: "an L1 table too small for the disk", from: "v3.qcow2", patch: (i) => setU32(i, L1_SIZE, 0), message: "L1 table is too small", qemuRefuses: true },
  { name: "an unaligned L1 table", from: "v3.qcow2", patch: (i) => setU64(i, L1_TABLE_OFFSET, getU64(i, L1_TABLE_OFFSET) + 8n), message: "invalid L1 table offset", qemuRefuses: true },
  { name: "an L1 table past the end of the file", from: "v3.qcow2", patch: (i) => setU64(i, L1_TABLE_OFFSET, 1n << 30n), message: /L1 table at 0x40000000 \(8 bytes\) lies past the end of the file/, qemuRefuses: false },
  {
    name: "a virtual size of 2^53",
    from: "big-clusters.qcow2",
    patch: (i) => {
      setU64(i, SIZE, 1n << 53n);
      setU32(i, L1_SIZE, 1 << 14);
    },
    message: "virtual size 9007199254740992 exceeds the 2^53-byte limit of this reader",
    qemuRefuses: false,
  },
  { name: "compression type 2", from: "v3.qcow2", patch: (i) => (i[COMPRESSION_TYPE] = 2), message: "unknown compression type: 2", qemuRefuses: true },
  { name: "zstd without its incompatible bit", from: "v3.qcow2", patch: (i) => (i[COMPRESSION_TYPE] = 1), message: "compression type incompatible feature bit is not set", qemuRefuses: true },
  { name: "the compression bit with deflate", from: "v3.qcow2", patch: (i) => setU64(i, INCOMPATIBLE, 1n << 3n), message: "feature bit must not be set", qemuRefuses: true },
  { name: "an external data file that is not named", from: "v3.qcow2", patch: (i) => setU64(i, INCOMPATIBLE, 1n << 2n), message: "names none", qemuRefuses: true },
  { name: "raw external data without a data file", from: "v3.qcow2", patch: (i) => setU64(i, AUTOCLEAR, 1n << 1n), message: "data-file-raw requires a data file", qemuRefuses: true },
  {
    name: "a backing file name over 1023 bytes",
    from: "v3.qcow2",
    patch: (i) => {
      setU64(i, BACKING_FILE_OFFSET, 0x1000n);
      setU32(i, BACKING_FILE_SIZE, 1024);
    },
    message: "backing file name too long (1024 bytes)",
    qemuRefuses: true,
  },
  { name: "a bitmaps extension of the wrong length", from: "v3.qcow2", patch: (i) => setU32(i, extensionOffset(i, EXT_FEATURE_TABLE), 0x23852875), message: "bitmaps extension: invalid length", qemuRefuses: true },
  { name: "a CRYPTO extension without LUKS", from: "v3.qcow2", patch: (i) => setU32(i, extensionOffset(i, EXT_FEATURE_TABLE), 0x0537be77), message: "CRYPTO header extension only expected with LUKS", qemuRefuses: true },
  { name: "a backing format name of 16 bytes", from: "overlay.qcow2", patch: (i) => setU32(i, extensionOffset(i, EXT_BACKING_FORMAT) + 4, 16), message: "backing format name too long (16 bytes, at most 15)", qemuRefuses: false },
  {
    name: "a snapshot table past the end of the file",
    from: "v3.qcow2",
    patch: (i) => {
      setU32(i, NB_SNAPSHOTS, 1);
      setU64(i, SNAPSHOTS_OFFSET, 1n << 30n);
    },
    message: "snapshot table entry 0 at 0x40000000 (40 bytes) lies past the end of the file",
    qemuRefuses: false,
  },
  {
    name: "a snapshot with too much extra data",
    from: "snapshotted.qcow2",
    patch: (i) => setU32(i, Number(getU64(i, SNAPSHOTS_OFFSET)) + 36, 1025),
    message: "too much extra metadata in snapshot table entry 0",
    qemuRefuses: true,
  },
  // qcow v1 (header: size at 24, cluster_bits at 32, l2_bits at 33, crypt_method at 36, L1 at 40).
  { name: "qcow v1 with 128 KiB clusters", from: "v1.qcow", patch: (i) => (i[32] = 17), message: "cluster size must be between 512 and 64k", qemuRefuses: true },
  { name: "qcow v1 with 128 KiB L2 tables", from: "v1.qcow", patch: (i) => (i[33] = 14), message: "L2 table size must be between 512 and 64k", qemuRefuses: true },
  { name: "qcow v1 of one byte", from: "v1.qcow", patch: (i) => setU64(i, SIZE, 1n), message: "image size is too small", qemuRefuses: true },
  { name: "qcow v1 with AES", from: "v1.qcow", patch: (i) => setU32(i, 36, 1), message: "encrypted image (legacy AES) is not supported", qemuRefuses: false },
  { name: "qcow v1 with encryption method 2", from: "v1.qcow", patch: (i) => setU32(i, 36, 2), message: "invalid encryption method in qcow header", qemuRefuses: true },
  { name: "qcow v1 with its L1 table past the end", from: "v1.qcow", patch: (i) => setU64(i, 40, 1n << 30n), message: "L1 table at 0x40000000", qemuRefuses: false },
];

describe("broken images are refused at open, naming the reason", () => {
  cases.forEach((entry, index) => {
    test(entry.name, () => {
      const image = lab.readFile(entry.from);
      entry.patch(image);
      const name = `case-${index}-${entry.from}`;
      lab.writeFile(name, image);
      let error: unknown;
      try {
        openQcow2Backstore(lab.path(name), { sizeBytes: MiB, readOnly: true }).close();
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ImageRefusedError);
      if (typeof entry.message === "string") expect((error as Error).message).toContain(entry.message);
      else expect((error as Error).message).toMatch(entry.message);
      expect((error as Error).message.startsWith(lab.path(name))).toBe(true);
      if (entry.qemuRefuses) {
        const qemu = Bun.spawnSync(["qemu-img", "convert", "-U", "-O", "raw", name, `${name}.out`], { cwd: lab.dir, stdout: "pipe", stderr: "pipe" });
        expect(qemu.exitCode).not.toBe(0);
      }
    });
  });

  test("the images the cases start from open", () => {
    for (const name of ["v3.qcow2", "small-clusters.qcow2", "big-clusters.qcow2", "snapshotted.qcow2", "overlay.qcow2", "v1.qcow"]) {
      openQcow2Backstore(lab.path(name), { sizeBytes: 4 * MiB, readOnly: true }).close();
    }
    expect(getU32(lab.readFile("v3.qcow2"), VERSION)).toBe(3);
  });
});
