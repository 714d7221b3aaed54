import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import type { FileBackstore } from "../../backstores/file/file-backstore.ts";
import { openFileBackstore, type FileBackstoreOpenOptions } from "../../backstores/file/open-file.ts";
import { BackstoreError, BackstoreOpenError } from "../../backstores/types.ts";
import { EOPNOTSUPP } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { FaultySyscalls, MappedBuffer, makeTempDir } from "./support.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 8 * 1024 * 1024;
const FS_BLOCK_BYTES = 4096;
/** Tests move up to 128 KiB in one command (hw_max_sectors defaults to 128). */
const TRANSFER_BLOCKS_MAX = 256;

let directory: ReturnType<typeof makeTempDir>;
let imagePath: string;
const stores: FileBackstore[] = [];
const devices: SimDevice[] = [];

beforeEach(() => {
  directory = makeTempDir();
  imagePath = `${directory.path}/disk.img`;
});

afterEach(async () => {
  for (const device of devices.splice(0)) await device.close();
  for (const store of stores.splice(0)) store.close();
  directory.remove();
});

function open(options: Partial<FileBackstoreOpenOptions> = {}, path = imagePath): FileBackstore {
  const store = openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, ...options });
  stores.push(store);
  return store;
}

function simOver(store: FileBackstore, writeCacheEnabled = false): SimDevice {
  stores.splice(stores.indexOf(store), 1); // the device closes it
  const device = new SimDevice({
    backstore: store,
    sizeBytes: SIZE_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    scsi: { writeCacheEnabled, maxTransferBlocks: TRANSFER_BLOCKS_MAX },
  });
  devices.push(device);
  return device;
}

async function writeBlocks(device: SimDevice, lba: number, blocks: number, seed: number, flags = 0): Promise<Uint8Array> {
  const data = cdbs.patternBytes(blocks * BLOCK_BYTES, seed);
  const completion = await device.submit(cdbs.write10(lba, blocks, flags), { dataOut: data });
  expect(completion.status).toBe(0);
  return data;
}

async function readBlocks(device: SimDevice, lba: number, blocks: number): Promise<Uint8Array> {
  const completion = await device.submit(cdbs.read10(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
  expect(completion.status).toBe(0);
  return completion.dataIn;
}

function fileBytes(offset: number, length: number): Uint8Array {
  return new Uint8Array(readFileSync(imagePath).subarray(offset, offset + length));
}

describe("file store: opening", () => {
  test("a missing image is created sparse at dev_size", () => {
    open();
    expect(statSync(imagePath).size).toBe(SIZE_BYTES);
    expect(statSync(imagePath).blocks).toBe(0);
  });

  test("a shorter image is extended sparsely and keeps its bytes", () => {
    writeFileSync(imagePath, cdbs.patternBytes(4096, 1));
    open();
    expect(statSync(imagePath).size).toBe(SIZE_BYTES);
    expect(statSync(imagePath).blocks * 512).toBe(4096);
    expect(fileBytes(0, 4096)).toEqual(cdbs.patternBytes(4096, 1));
  });

  test("a longer image is served as it is, not cut", () => {
    writeFileSync(imagePath, "");
    truncateSync(imagePath, 2 * SIZE_BYTES);
    open();
    expect(statSync(imagePath).size).toBe(2 * SIZE_BYTES);
  });

  test("refusals say what to change", () => {
    expect(() => open({ readOnly: true })).toThrow("does not exist (;ro never creates an image)");
    expect(() => open({}, "/dev/no-such-disk")).toThrow("device nodes are never created");
    expect(() => open({}, `${directory.path}/missing/disk.img`)).toThrow("its directory does not exist");
    expect(() => open({}, directory.path)).toThrow(BackstoreOpenError);
    writeFileSync(imagePath, "short");
    expect(() => open({ readOnly: true })).toThrow("forbids extending it");
    expect(() => open({}, "/dev/null")).toThrow("neither a regular file nor a block device");
  });

  test("two handlers never serve one image; readers may share", () => {
    open();
    expect(() => open()).toThrow("in use by another handler (flock)");
    expect(() => open({ readOnly: true })).toThrow("in use by another handler");
    stores.pop()?.close();
    open({ readOnly: true });
    open({ readOnly: true });
    expect(() => open()).toThrow("in use by another handler");
  });

  test("capabilities follow the file system and the options", () => {
    expect(open().capabilities).toEqual({
      readOnly: false,
      unmap: true,
      unmapReadsZeroes: true,
      lbaStatus: true,
      volatileCache: true,
      unmapGranularityBytes: FS_BLOCK_BYTES,
    });
    stores.pop()?.close();
    expect(open({ sync: true }).capabilities.volatileCache).toBe(false);
    stores.pop()?.close();
    const readOnly = open({ readOnly: true }).capabilities;
    expect(readOnly.readOnly).toBe(true);
    expect(readOnly.unmap).toBe(false);
    stores.pop()?.close();
    const syscalls = new FaultySyscalls();
    syscalls.faults.push({ call: "fallocate", errno: EOPNOTSUPP });
    expect(open({ syscalls }).capabilities.unmap).toBe(false);
  });
});

describe("file store: I/O through the simulator", () => {
  test("written blocks land in the file at their offset and read back", async () => {
    const device = simOver(open());
    const data = await writeBlocks(device, 1000, 24, 3);
    expect(fileBytes(1000 * BLOCK_BYTES, 24 * BLOCK_BYTES)).toEqual(data);
    expect(await readBlocks(device, 1000, 24)).toEqual(data);
    expect(await readBlocks(device, 0, 8)).toEqual(new Uint8Array(8 * BLOCK_BYTES));
  });

  test("with the write cache off every write is durable (RWF_DSYNC); on, only FUA ones are", async () => {
    const syscalls = new FaultySyscalls();
    const device = simOver(open({ syscalls }), false);
    await writeBlocks(device, 8, 8, 1);
    expect(syscalls.callsOf("pwritev").map((call) => call.flags)).toEqual([libc.RWF_DSYNC]);
    await device.close();
    devices.splice(0);

    const cached = new FaultySyscalls();
    const cachedDevice = simOver(open({ syscalls: cached }), true);
    await writeBlocks(cachedDevice, 8, 8, 2);
    await writeBlocks(cachedDevice, 16, 8, 3, 0x08);
    expect(cached.callsOf("pwritev").map((call) => call.flags)).toEqual([0, libc.RWF_DSYNC]);
  });

  test("a kernel without RWF_DSYNC gets pwritev then fdatasync", () => {
    const syscalls = new FaultySyscalls();
    syscalls.faults.push({ call: "pwritev", errno: EOPNOTSUPP, times: 1 });
    const store = open({ syscalls });
    const buffer = new MappedBuffer(4096);
    try {
      buffer.bytes.set(cdbs.patternBytes(4096, 8));
      store.write(8192, 4096, buffer.segments(4096), 0, true);
      expect(syscalls.calls.map((call) => call.call).filter((call) => call !== "lseek" && call !== "fallocate")).toEqual([
        "pwritev",
        "pwritev",
        "fdatasync",
      ]);
      expect(fileBytes(8192, 4096)).toEqual(cdbs.patternBytes(4096, 8));
    } finally {
      buffer.release();
    }
  });

  test("flush() is fdatasync", () => {
    const syscalls = new FaultySyscalls();
    open({ syscalls }).flush();
    expect(syscalls.callsOf("fdatasync").length).toBe(1);
  });

  test("a read-only image answers DATA PROTECT / WRITE PROTECTED and still reads", async () => {
    writeFileSync(imagePath, cdbs.patternBytes(SIZE_BYTES, 4));
    const store = open({ readOnly: true });
    expect(() => store.unmap(0, 4096)).toThrow(BackstoreError);
    const device = simOver(store);
    const refused = await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(BLOCK_BYTES) });
    expect(refused.status).toBe(2);
    expect(cdbs.senseTriple(refused.sense)).toEqual([0x07, 0x27, 0x00]);
    expect(await readBlocks(device, 0, 8)).toEqual(cdbs.patternBytes(SIZE_BYTES, 4).subarray(0, 8 * BLOCK_BYTES));
  });

  test(";direct serves aligned and unaligned transfers alike", async () => {
    const syscalls = new FaultySyscalls();
    const device = simOver(open({ direct: true, syscalls }));
    const aligned = await writeBlocks(device, 64, 16, 5); // 8 KiB at 32 KiB: O_DIRECT
    const unaligned = await writeBlocks(device, 3, 3, 6); // 1.5 KiB at 1.5 KiB: buffered
    expect(await readBlocks(device, 64, 16)).toEqual(aligned);
    expect(await readBlocks(device, 3, 3)).toEqual(unaligned);
    expect(fileBytes(3 * BLOCK_BYTES, 3 * BLOCK_BYTES)).toEqual(unaligned);
    expect(fileBytes(64 * BLOCK_BYTES, 16 * BLOCK_BYTES)).toEqual(aligned);
  });
});

describe("file store: zero-copy transfers", () => {
  test("more iovecs than IOV_MAX go out in several calls", () => {
    const syscalls = new FaultySyscalls();
    const store = open({ syscalls });
    const pieces = 3000;
    const buffer = new MappedBuffer(pieces * 1024);
    try {
      const source = cdbs.patternBytes(pieces * 512, 9);
      // 512-byte pieces with 512-byte gaps: no two iovecs merge.
      const segments = buffer.segments(pieces * 512, 512, 1024);
      segments.copyFrom(source);
      store.write(0, pieces * 512, segments, 0, false);
      expect(syscalls.callsOf("pwritev").length).toBe(3);
      expect(fileBytes(0, pieces * 512)).toEqual(source);
      buffer.bytes.fill(0);
      store.read(0, pieces * 512, segments, 0);
      const back: Uint8Array = new Uint8Array(pieces * 512);
      segments.copyTo(back);
      expect(back).toEqual(source);
    } finally {
      buffer.release();
    }
  });

  test("short reads and writes are finished by further calls", () => {
    const syscalls = new FaultySyscalls();
    syscalls.transferBytesMax = 700;
    const store = open({ syscalls });
    const buffer = new MappedBuffer(16384);
    try {
      const segments = buffer.segments(8192, 1024, 2048);
      segments.copyFrom(cdbs.patternBytes(8192, 10));
      store.write(4096, 8192, segments, 0, false);
      expect(syscalls.callsOf("pwritev").length).toBe(Math.ceil(8192 / 700));
      expect(fileBytes(4096, 8192)).toEqual(cdbs.patternBytes(8192, 10));
      buffer.bytes.fill(0);
      store.read(4096, 8192, segments, 0);
      const back: Uint8Array = new Uint8Array(8192);
      segments.copyTo(back);
      expect(back).toEqual(cdbs.patternBytes(8192, 10));
    } finally {
      buffer.release();
    }
  });

  test("bytes missing at the end of a truncated image read as zeros, not stale data", () => {
    const store = open();
    truncateSync(imagePath, 4096 + 1024);
    const buffer = new MappedBuffer(8192);
    try {
      buffer.bytes.fill(0xa5);
      store.read(4096, 8192, buffer.segments(8192), 0);
      expect(buffer.bytes.every((byte) => byte === 0)).toBe(true);
    } finally {
      buffer.release();
    }
  });
});

describe("file store: UNMAP, zeroing and LBA status", () => {
  async function filled(device: SimDevice, blocks: number): Promise<void> {
    await writeBlocks(device, 0, blocks, 12);
  }

  test("unmap punches holes: blocks are freed and read zeros", async () => {
    const store = open();
    const device = simOver(store);
    await filled(device, 256);
    expect(statSync(imagePath).blocks * 512).toBe(256 * BLOCK_BYTES);
    store.unmap(32 * 1024, 64 * 1024);
    expect(statSync(imagePath).blocks * 512).toBe(256 * BLOCK_BYTES - 64 * 1024);
    expect(await readBlocks(device, 64, 128)).toEqual(new Uint8Array(128 * BLOCK_BYTES));
    expect(await readBlocks(device, 60, 4)).toEqual(cdbs.patternBytes(256 * BLOCK_BYTES, 12).subarray(60 * BLOCK_BYTES, 64 * BLOCK_BYTES));
  });

  test("where holes cannot be punched, unmap still leaves zeros", async () => {
    const syscalls = new FaultySyscalls();
    syscalls.faults.push({ call: "fallocate", errno: EOPNOTSUPP, mode: libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE });
    const store = open({ syscalls });
    const device = simOver(store);
    await filled(device, 64);
    store.unmap(8192, 8192);
    expect(await readBlocks(device, 16, 16)).toEqual(new Uint8Array(16 * BLOCK_BYTES));
  });

  test("writeZeroes deallocates when allowed, zero-fills in place when not, and writes zeros as a last resort", async () => {
    const syscalls = new FaultySyscalls();
    const store = open({ syscalls });
    const device = simOver(store);
    await filled(device, 256);
    store.writeZeroes(0, 32 * 1024, true, false);
    expect(store.lbaStatus(0)).toEqual({ mapped: false, lengthBytes: 32 * 1024 });
    store.writeZeroes(32 * 1024, 32 * 1024, false, true);
    const zeroRange = libc.FALLOC_FL_ZERO_RANGE | libc.FALLOC_FL_KEEP_SIZE;
    expect(syscalls.callsOf("fallocate").at(-1)).toEqual({ call: "fallocate", offsetBytes: 32 * 1024, lengthBytes: 32 * 1024, flags: zeroRange });
    expect(syscalls.callsOf("fdatasync").length).toBe(1);
    syscalls.faults.push({ call: "fallocate", errno: EOPNOTSUPP, mode: zeroRange });
    store.writeZeroes(64 * 1024, 32 * 1024, false, false);
    expect(await readBlocks(device, 0, 192)).toEqual(new Uint8Array(192 * BLOCK_BYTES));
    expect(await readBlocks(device, 192, 64)).toEqual(cdbs.patternBytes(256 * BLOCK_BYTES, 12).subarray(192 * BLOCK_BYTES));
  });

  test("lbaStatus() walks data and holes in whole blocks", async () => {
    const store = open();
    const device = simOver(store);
    expect(store.lbaStatus(0)).toEqual({ mapped: false, lengthBytes: SIZE_BYTES });
    await writeBlocks(device, 16, 8, 1); // 8 KiB..12 KiB: one 4 KiB file system block
    await writeBlocks(device, 1024, 16, 2); // 512 KiB..520 KiB
    expect(store.lbaStatus(0)).toEqual({ mapped: false, lengthBytes: 8192 });
    expect(store.lbaStatus(8192)).toEqual({ mapped: true, lengthBytes: 4096 });
    expect(store.lbaStatus(8192 + 1024)).toEqual({ mapped: true, lengthBytes: 3072 });
    expect(store.lbaStatus(12288)).toEqual({ mapped: false, lengthBytes: 512 * 1024 - 12288 });
    expect(store.lbaStatus(512 * 1024)).toEqual({ mapped: true, lengthBytes: 8192 });
    expect(store.lbaStatus(520 * 1024)).toEqual({ mapped: false, lengthBytes: SIZE_BYTES - 520 * 1024 });
    expect(store.lbaStatus(SIZE_BYTES - BLOCK_BYTES)).toEqual({ mapped: false, lengthBytes: BLOCK_BYTES });
  });

  test("a SCSI block holding any data counts as mapped", () => {
    // 8 KiB SCSI blocks over 4 KiB file system blocks; data only in the second half of block 1.
    const store = openFileBackstore(imagePath, { sizeBytes: SIZE_BYTES, blockSizeBytes: 8192 });
    stores.push(store);
    const fd = openSync(imagePath, "r+");
    writeSync(fd, new Uint8Array([1]), 0, 1, 12288);
    closeSync(fd);
    expect(store.lbaStatus(0)).toEqual({ mapped: false, lengthBytes: 8192 });
    expect(store.lbaStatus(8192)).toEqual({ mapped: true, lengthBytes: 8192 });
    expect(store.lbaStatus(16384)).toEqual({ mapped: false, lengthBytes: SIZE_BYTES - 16384 });
  });
});
