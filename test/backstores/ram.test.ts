import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { RAM_CHUNK_BYTES, RamBackstore, type RamBackstoreOptions } from "../../backstores/ram/ram-backstore.ts";
import { SHM_DIRECTORY, SHM_FILE_PREFIX, shmFileName, shmFilePath } from "../../backstores/ram/shm-file.ts";
import { BackstoreError, BackstoreOpenError } from "../../backstores/types.ts";
import { ENOSPC } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { FaultySyscalls, MappedBuffer, senseInformation, uniqueDeviceKey } from "./support.ts";

const BLOCK_BYTES = 512;
const CHUNK_BLOCKS = RAM_CHUNK_BYTES / BLOCK_BYTES;
const SIZE_BYTES = 16 * RAM_CHUNK_BYTES;
const PAGE_BYTES = 4096;
/** Tests move up to 3 MiB in one command (hw_max_sectors defaults to 128). */
const TRANSFER_BLOCKS_MAX = 8192;

/** Every store a test opens, destroyed afterwards so /dev/shm is left clean. */
const opened: RamBackstore[] = [];
const devices: SimDevice[] = [];

afterEach(async () => {
  for (const device of devices.splice(0)) await device.close();
  for (const store of opened.splice(0)) store.destroy();
});

function openStore(sizeBytes: number, options: RamBackstoreOptions = {}): RamBackstore {
  const store = new RamBackstore(sizeBytes, options);
  opened.push(store);
  return store;
}

function simOver(store: RamBackstore): SimDevice {
  const device = new SimDevice({
    backstore: store,
    sizeBytes: store.sizeBytes,
    blockSizeBytes: BLOCK_BYTES,
    sim: { dataBlockCount: 2048 },
    scsi: { maxTransferBlocks: TRANSFER_BLOCKS_MAX },
  });
  devices.push(device);
  return device;
}

async function writeBlocks(device: SimDevice, lba: number, blocks: number, seed: number): Promise<Uint8Array> {
  const data = cdbs.patternBytes(blocks * BLOCK_BYTES, seed);
  const completion = await device.submit(cdbs.write16(lba, blocks), { dataOut: data });
  expect(completion.status).toBe(0);
  return data;
}

async function readBlocks(device: SimDevice, lba: number, blocks: number): Promise<Uint8Array> {
  const completion = await device.submit(cdbs.read16(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
  expect(completion.status).toBe(0);
  return completion.dataIn;
}

function shmBytesHeld(path: string): number {
  return statSync(path).blocks * 512;
}

describe("RAM store", () => {
  test("reads of untouched ranges are zeros and take no memory", async () => {
    const key = uniqueDeviceKey("zeros");
    const store = openStore(SIZE_BYTES, { deviceKey: key });
    const device = simOver(store);
    expect(await readBlocks(device, 3 * CHUNK_BLOCKS - 8, 16)).toEqual(new Uint8Array(16 * BLOCK_BYTES));
    expect(store.allocatedBytes).toBe(0);
    expect(shmBytesHeld(shmFilePath(key))).toBe(0);
  });

  test("writes take memory a page at a time, count whole chunks, and read back across chunk edges", async () => {
    const key = uniqueDeviceKey("rw");
    const store = openStore(SIZE_BYTES, { deviceKey: key });
    const device = simOver(store);
    const data = await writeBlocks(device, 2 * CHUNK_BLOCKS - 4, 8, 11);
    // The cap counts both chunks touched; tmpfs holds only the two pages written.
    expect(store.allocatedBytes).toBe(2 * RAM_CHUNK_BYTES);
    expect(shmBytesHeld(shmFilePath(key))).toBe(2 * PAGE_BYTES);
    expect(await readBlocks(device, 2 * CHUNK_BLOCKS - 4, 8)).toEqual(data);
    const around = await readBlocks(device, 2 * CHUNK_BLOCKS - 8, 16);
    expect(around.subarray(0, 4 * BLOCK_BYTES)).toEqual(new Uint8Array(4 * BLOCK_BYTES));
    expect(around.subarray(4 * BLOCK_BYTES, 12 * BLOCK_BYTES)).toEqual(data);
  });

  test("a size that is not a whole number of chunks serves its last partial chunk", async () => {
    const sizeBytes = 3 * RAM_CHUNK_BYTES + 64 * BLOCK_BYTES;
    const store = openStore(sizeBytes, { deviceKey: uniqueDeviceKey("tail") });
    const device = simOver(store);
    const lastLba = sizeBytes / BLOCK_BYTES - 8;
    const data = await writeBlocks(device, lastLba, 8, 5);
    expect(await readBlocks(device, lastLba, 8)).toEqual(data);
    expect(store.allocatedBytes).toBe(64 * BLOCK_BYTES);
    expect(store.lbaStatus(3 * RAM_CHUNK_BYTES)).toEqual({ mapped: false, lengthBytes: 64 * BLOCK_BYTES - PAGE_BYTES });
    expect(store.lbaStatus(sizeBytes - PAGE_BYTES)).toEqual({ mapped: true, lengthBytes: PAGE_BYTES });
  });

  test("unmap gives the pages back, and chunks left without data stop counting", async () => {
    const key = uniqueDeviceKey("unmap");
    const store = openStore(SIZE_BYTES, { deviceKey: key });
    const device = simOver(store);
    await writeBlocks(device, 0, 3 * CHUNK_BLOCKS, 21);
    expect(store.allocatedBytes).toBe(3 * RAM_CHUNK_BYTES);
    // From the middle of chunk 0 to the middle of chunk 2: chunk 1 stops counting, and the
    // pages of the whole range go back.
    store.unmap(RAM_CHUNK_BYTES / 2, 2 * RAM_CHUNK_BYTES);
    expect(store.allocatedBytes).toBe(2 * RAM_CHUNK_BYTES);
    expect(shmBytesHeld(shmFilePath(key))).toBe(RAM_CHUNK_BYTES);
    // Unmapping the rest of chunk 0 in a second piece leaves it empty: it stops counting too.
    store.unmap(0, RAM_CHUNK_BYTES / 2);
    expect(store.allocatedBytes).toBe(RAM_CHUNK_BYTES);
    store.unmap(0, RAM_CHUNK_BYTES / 2);
    const all = await readBlocks(device, 0, 3 * CHUNK_BLOCKS);
    const expected = cdbs.patternBytes(3 * RAM_CHUNK_BYTES, 21);
    expected.fill(0, 0, RAM_CHUNK_BYTES / 2 + 2 * RAM_CHUNK_BYTES);
    expect(all).toEqual(expected);
  });

  test("writeZeroes punches holes whatever `deallocate` says", () => {
    const store = openStore(SIZE_BYTES, { deviceKey: uniqueDeviceKey("zero") });
    const buffer = new MappedBuffer(RAM_CHUNK_BYTES);
    try {
      buffer.bytes.fill(0x5a);
      store.write(4 * RAM_CHUNK_BYTES, RAM_CHUNK_BYTES, buffer.segments(RAM_CHUNK_BYTES), 0);
      store.writeZeroes(4 * RAM_CHUNK_BYTES, RAM_CHUNK_BYTES);
      expect(store.allocatedBytes).toBe(0);
      store.read(4 * RAM_CHUNK_BYTES, RAM_CHUNK_BYTES, buffer.segments(RAM_CHUNK_BYTES), 0);
      expect(buffer.bytes.every((byte) => byte === 0)).toBe(true);
    } finally {
      buffer.release();
    }
  });

  test("lbaStatus() reports data and holes in whole pages up to the end", async () => {
    const store = openStore(SIZE_BYTES, { deviceKey: uniqueDeviceKey("status") });
    const device = simOver(store);
    await writeBlocks(device, 2 * CHUNK_BLOCKS, 1, 1);
    await writeBlocks(device, 3 * CHUNK_BLOCKS + 9, 1, 2);
    expect(store.lbaStatus(0)).toEqual({ mapped: false, lengthBytes: 2 * RAM_CHUNK_BYTES });
    expect(store.lbaStatus(2 * RAM_CHUNK_BYTES + BLOCK_BYTES)).toEqual({ mapped: true, lengthBytes: PAGE_BYTES - BLOCK_BYTES });
    // Block 9 of chunk 3 lies in the chunk's second page.
    expect(store.lbaStatus(2 * RAM_CHUNK_BYTES + PAGE_BYTES)).toEqual({ mapped: false, lengthBytes: RAM_CHUNK_BYTES });
    expect(store.lbaStatus(3 * RAM_CHUNK_BYTES + PAGE_BYTES)).toEqual({ mapped: true, lengthBytes: PAGE_BYTES });
    const afterData = 3 * RAM_CHUNK_BYTES + 2 * PAGE_BYTES;
    expect(store.lbaStatus(afterData)).toEqual({ mapped: false, lengthBytes: SIZE_BYTES - afterData });
  });

  test("capabilities say UNMAP deallocates, reads zeros, and LBA status is known", () => {
    const store = openStore(SIZE_BYTES);
    expect(store.capabilities).toEqual({
      readOnly: false,
      unmap: true,
      unmapReadsZeroes: true,
      lbaStatus: true,
      volatileCache: false,
      unmapGranularityBytes: PAGE_BYTES,
    });
  });
});

describe("RAM store memory cap", () => {
  test("a write past ;max= answers SPACE ALLOCATION FAILED with the LBA, and the device keeps serving", async () => {
    const store = openStore(SIZE_BYTES, { deviceKey: uniqueDeviceKey("cap"), maxBytes: 2 * RAM_CHUNK_BYTES });
    const device = simOver(store);
    await writeBlocks(device, 0, 8, 1);
    await writeBlocks(device, 5 * CHUNK_BLOCKS, 8, 2);
    const refused = await device.submit(cdbs.write16(9 * CHUNK_BLOCKS + 3, 8), { dataOut: cdbs.patternBytes(8 * BLOCK_BYTES, 3) });
    expect(refused.status).toBe(2);
    expect(cdbs.senseTriple(refused.sense)).toEqual([0x07, 0x27, 0x07]);
    expect(senseInformation(refused.sense)).toBe(9 * CHUNK_BLOCKS + 3);
    expect(store.allocatedBytes).toBe(2 * RAM_CHUNK_BYTES);
    // Rewrites inside held chunks still work, and freeing a chunk makes room again.
    await writeBlocks(device, 16, 8, 4);
    store.unmap(0, RAM_CHUNK_BYTES);
    await writeBlocks(device, 9 * CHUNK_BLOCKS + 3, 8, 5);
  });

  test("a cap below one chunk is refused at open", () => {
    expect(() => openStore(SIZE_BYTES, { maxBytes: RAM_CHUNK_BYTES - 1 })).toThrow(BackstoreOpenError);
  });

  test("a full tmpfs (ENOSPC) answers no-space", () => {
    const syscalls = new FaultySyscalls();
    const store = openStore(SIZE_BYTES, { deviceKey: uniqueDeviceKey("enospc"), syscalls });
    syscalls.faults.push({ call: "pwritev", errno: ENOSPC, times: 1 });
    const buffer = new MappedBuffer(4096);
    try {
      let caught: unknown;
      try {
        store.write(RAM_CHUNK_BYTES + 4096, 4096, buffer.segments(4096), 0);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(BackstoreError);
      expect((caught as BackstoreError).kind).toBe("no-space");
      expect((caught as BackstoreError).offsetBytes).toBe(RAM_CHUNK_BYTES + 4096);
      store.write(RAM_CHUNK_BYTES + 4096, 4096, buffer.segments(4096), 0);
      expect(store.allocatedBytes).toBe(RAM_CHUNK_BYTES);
    } finally {
      buffer.release();
    }
  });

  test("sizes beyond 16 TiB are refused at open", () => {
    expect(() => openStore(17 * 1024 ** 4)).toThrow("16 TiB");
  });
});

describe("RAM store across restarts", () => {
  test("close() keeps the data; a new store with the same key reattaches it; destroy() deletes it", async () => {
    const key = uniqueDeviceKey("restart");
    const first = new RamBackstore(SIZE_BYTES, { deviceKey: key });
    const firstDevice = new SimDevice({ backstore: first, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
    const data = await writeBlocks(firstDevice, 7 * CHUNK_BLOCKS + 1, 32, 77);
    await firstDevice.close();
    expect(existsSync(shmFilePath(key))).toBe(true);

    const second = openStore(SIZE_BYTES, { deviceKey: key });
    expect(second.allocatedBytes).toBe(RAM_CHUNK_BYTES);
    expect(second.lbaStatus(7 * RAM_CHUNK_BYTES)).toEqual({ mapped: true, lengthBytes: 5 * PAGE_BYTES });
    const device = simOver(second);
    expect(await readBlocks(device, 7 * CHUNK_BLOCKS + 1, 32)).toEqual(data);
    await device.close();
    devices.splice(0);
    second.destroy();
    expect(existsSync(shmFilePath(key))).toBe(false);
  });

  test("data survives the handler killed with SIGKILL", async () => {
    const key = uniqueDeviceKey("kill9");
    const child = Bun.spawn([process.execPath, `${import.meta.dir}/fixtures/ram-writer-killed.ts`, key, String(SIZE_BYTES), "4000", "99"], {
      stdout: "inherit",
      stderr: "inherit",
    });
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
    const store = openStore(SIZE_BYTES, { deviceKey: key });
    const device = simOver(store);
    expect(await readBlocks(device, 4000, 64)).toEqual(cdbs.patternBytes(64 * BLOCK_BYTES, 99));
  });

  test("a growing dev_size keeps what was written", async () => {
    const key = uniqueDeviceKey("grow");
    const small = new RamBackstore(4 * RAM_CHUNK_BYTES, { deviceKey: key });
    const buffer = new MappedBuffer(8192);
    try {
      buffer.bytes.set(cdbs.patternBytes(8192, 3));
      small.write(RAM_CHUNK_BYTES, 8192, buffer.segments(8192), 0);
      small.close();
      const large = openStore(SIZE_BYTES, { deviceKey: key });
      buffer.bytes.fill(0);
      large.read(RAM_CHUNK_BYTES, 8192, buffer.segments(8192), 0);
      expect(buffer.bytes).toEqual(cdbs.patternBytes(8192, 3));
    } finally {
      buffer.release();
    }
  });

  test("a reattached store counts only the chunks that hold data", () => {
    const key = uniqueDeviceKey("recount");
    const path = shmFilePath(key);
    const fd = libc.open(path, libc.O_RDWR | libc.O_CREAT, 0o600);
    libc.ftruncate(fd, SIZE_BYTES);
    libc.pwrite(fd, new Uint8Array(PAGE_BYTES).fill(1), PAGE_BYTES, 5 * RAM_CHUNK_BYTES - PAGE_BYTES);
    libc.pwrite(fd, new Uint8Array(PAGE_BYTES).fill(1), PAGE_BYTES, 9 * RAM_CHUNK_BYTES);
    libc.close(fd);
    const store = openStore(SIZE_BYTES, { deviceKey: key });
    expect(store.allocatedBytes).toBe(2 * RAM_CHUNK_BYTES);
    expect(store.lbaStatus(4 * RAM_CHUNK_BYTES)).toEqual({ mapped: false, lengthBytes: RAM_CHUNK_BYTES - PAGE_BYTES });
  });

  test("two handlers never serve one RAM store", () => {
    const key = uniqueDeviceKey("twice");
    openStore(SIZE_BYTES, { deviceKey: key });
    expect(() => new RamBackstore(SIZE_BYTES, { deviceKey: key })).toThrow("in use by another handler");
  });

  test("a store without a key leaves no file behind", () => {
    const before = readdirSync(SHM_DIRECTORY).filter((name) => name.startsWith(SHM_FILE_PREFIX)).length;
    const store = new RamBackstore(SIZE_BYTES);
    expect(store.path).toBeUndefined();
    expect(readdirSync(SHM_DIRECTORY).filter((name) => name.startsWith(SHM_FILE_PREFIX)).length).toBe(before);
    store.destroy();
  });

  test("shared-memory names are readable and keep similar keys apart", () => {
    expect(shmFileName("user_1/disk0")).toMatch(/^tcmu-appliance-user_1_disk0-[0-9a-f]{8}$/);
    expect(shmFileName("user_1/disk0")).not.toBe(shmFileName("user_1_disk0"));
    expect(shmFileName("user_1/" + "x".repeat(400)).length).toBeLessThan(255);
  });
});
