// Faults injected under the file store, seen from the initiator's side of the simulator: the
// right sense with the failing LBA in INFORMATION, and the device serving on afterwards.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { openFileBackstore } from "../../backstores/file/open-file.ts";
import { EDQUOT, EIO, ENOSPC, EROFS } from "../../src/libc/errno.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { FaultySyscalls, makeTempDir, senseInformation } from "./support.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 4 * 1024 * 1024;
const CHECK_CONDITION = 2;

let directory: ReturnType<typeof makeTempDir>;
let syscalls: FaultySyscalls;
let device: SimDevice;

beforeEach(() => {
  directory = makeTempDir();
  syscalls = new FaultySyscalls();
  const store = openFileBackstore(`${directory.path}/disk.img`, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, syscalls });
  device = new SimDevice({ backstore: store, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, scsi: { writeCacheEnabled: true } });
});

afterEach(async () => {
  await device.close();
  directory.remove();
});

async function write(lba: number, blocks: number, seed: number, flags = 0) {
  return device.submit(cdbs.write10(lba, blocks, flags), { dataOut: cdbs.patternBytes(blocks * BLOCK_BYTES, seed) });
}

async function read(lba: number, blocks: number) {
  return device.submit(cdbs.read10(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
}

async function expectServing(): Promise<void> {
  expect((await write(2000, 8, 42)).status).toBe(0);
  const back = await read(2000, 8);
  expect(back.status).toBe(0);
  expect(back.dataIn).toEqual(cdbs.patternBytes(8 * BLOCK_BYTES, 42));
}

test("EIO on a read answers MEDIUM ERROR / UNRECOVERED READ ERROR with the LBA", async () => {
  syscalls.faults.push({ call: "preadv", errno: EIO, atOffsetBytes: 300 * BLOCK_BYTES, times: 1 });
  const failed = await read(300, 16);
  expect(failed.status).toBe(CHECK_CONDITION);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x03, 0x11, 0x00]);
  expect(senseInformation(failed.sense)).toBe(300);
  await expectServing();
});

test("EIO after a partial read names the LBA where the read stopped", async () => {
  syscalls.transferBytesMax = 4 * BLOCK_BYTES;
  syscalls.faults.push({ call: "preadv", errno: EIO, atOffsetBytes: 108 * BLOCK_BYTES, times: 1 });
  const failed = await read(100, 16);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x03, 0x11, 0x00]);
  expect(senseInformation(failed.sense)).toBe(108);
  syscalls.transferBytesMax = undefined;
  await expectServing();
});

test("EIO on a write answers MEDIUM ERROR / WRITE ERROR with the LBA", async () => {
  syscalls.faults.push({ call: "pwritev", errno: EIO, atOffsetBytes: 777 * BLOCK_BYTES, times: 1 });
  const failed = await write(777, 4, 1);
  expect(failed.status).toBe(CHECK_CONDITION);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x03, 0x0c, 0x00]);
  expect(senseInformation(failed.sense)).toBe(777);
  await expectServing();
});

test("ENOSPC on a write answers SPACE ALLOCATION FAILED WRITE PROTECT with the LBA", async () => {
  syscalls.faults.push({ call: "pwritev", errno: ENOSPC, atOffsetBytes: 64 * BLOCK_BYTES, times: 1 });
  const failed = await write(64, 8, 2);
  expect(failed.status).toBe(CHECK_CONDITION);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x07, 0x27, 0x07]);
  expect(senseInformation(failed.sense)).toBe(64);
  await expectServing();
});

test("EDQUOT counts as out of space too", async () => {
  syscalls.faults.push({ call: "pwritev", errno: EDQUOT, times: 1 });
  const failed = await write(10, 1, 3);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x07, 0x27, 0x07]);
  await expectServing();
});

test("a FUA write whose RWF_DSYNC fails with EIO is a WRITE ERROR", async () => {
  syscalls.faults.push({ call: "pwritev", errno: EIO, times: 1 });
  const failed = await write(5, 1, 4, 0x08);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x03, 0x0c, 0x00]);
  expect(senseInformation(failed.sense)).toBe(5);
  await expectServing();
});

test("a file system remounted read-only answers WRITE PROTECTED", async () => {
  syscalls.faults.push({ call: "pwritev", errno: EROFS, times: 1 });
  const failed = await write(10, 1, 5);
  expect(cdbs.senseTriple(failed.sense)).toEqual([0x07, 0x27, 0x00]);
  await expectServing();
});

test("store-level faults in fdatasync and fallocate become write and space errors", () => {
  const store = device.backstore;
  syscalls.faults.push({ call: "fdatasync", errno: EIO, times: 1 });
  expect(() => store.flush()).toThrow(expect.objectContaining({ kind: "write" }));
  syscalls.faults.push({ call: "fallocate", errno: ENOSPC, times: 1 });
  expect(() => store.writeZeroes(4096, 4096, false, false)).toThrow(expect.objectContaining({ kind: "no-space", offsetBytes: 4096 }));
  syscalls.faults.push({ call: "fallocate", errno: EIO, times: 1 });
  expect(() => store.unmap(8192, 4096)).toThrow(expect.objectContaining({ kind: "write", offsetBytes: 8192 }));
  store.flush();
});
