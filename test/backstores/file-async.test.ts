// The file store's concurrent path: io_uring and the I/O-thread fallback serve the same random
// mix of reads, writes, FUA writes and flushes at queue depth 32 with the data intact; the end of
// a truncated image reads as zeros; a request the kernel fails is redone on the synchronous
// path and reported as it would be there; and the policy keeps small copies of a file in memory
// inline while sending disk reads and durable writes async.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { closeSharedFileIo, effectiveFileIoMode, setDefaultFileIoMode, sharedFileIo, type FileIoMode } from "../../backstores/file/file-io.ts";
import { FileBackstore } from "../../backstores/file/file-backstore.ts";
import { openFileBackstore } from "../../backstores/file/open-file.ts";
import { LIBC_SYSCALLS } from "../../backstores/file/syscalls.ts";
import * as libc from "../../src/libc/libc.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { Prng } from "../ring/scripted-backstore.ts";
import { MappedBuffer, makeTempDir } from "./support.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 8 * 1024 * 1024;
const FUA = 0x08;
const ENGINES: FileIoMode[] = ["io_uring", "threads"];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => closeSharedFileIo());

/** An image on a disk file system (not tmpfs), so transfers really go async. */
function image(name = "disk.img"): string {
  const directory = makeTempDir();
  cleanups.push(directory.remove);
  return `${directory.path}/${name}`;
}

function deviceOver(store: FileBackstore): SimDevice {
  const device = new SimDevice({
    backstore: store,
    sizeBytes: SIZE_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    sim: { ringAreaBytes: 256 * 1024, dataBlockCount: 2048 },
    scsi: { writeCacheEnabled: true, maxTransferBlocks: 1024 },
  });
  cleanups.push(() => device.close());
  return device;
}

describe.each(ENGINES)("file store over %s", (io) => {
  test("serves a seeded random mix at queue depth 32 with every byte where it belongs", async () => {
    const path = image();
    const store = openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, io });
    expect(store.ioDescription).toContain(io === "io_uring" ? "io_uring" : "I/O threads");
    const device = deviceOver(store);
    const prng = new Prng(io === "io_uring" ? 41 : 42);
    const reference = new Uint8Array(SIZE_BYTES);
    const busy = new Set<number>();
    let sequence = 0;
    const worker = async () => {
      for (let round = 0; round < 60; round += 1) {
        let region = prng.below(SIZE_BYTES / 262144);
        while (busy.has(region)) region = (region + 1) % (SIZE_BYTES / 262144);
        busy.add(region);
        const blocks = 1 + prng.below(512);
        const lba = region * 512 + prng.below(512 - blocks + 1);
        const range = reference.subarray(lba * BLOCK_BYTES, (lba + blocks) * BLOCK_BYTES);
        const kind = prng.below(5);
        if (kind <= 1) {
          const data = cdbs.patternBytes(blocks * BLOCK_BYTES, (sequence += 1));
          const completion = await device.submit(cdbs.write16(lba, blocks, kind === 1 ? FUA : 0), { dataOut: data });
          expect(completion.status).toBe(0);
          range.set(data);
        } else if (kind === 2) {
          expect((await device.submit(Uint8Array.of(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0))).status).toBe(0);
        } else {
          const completion = await device.submit(cdbs.read16(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
          expect(completion.status).toBe(0);
          expect(Buffer.compare(completion.dataIn, range)).toBe(0);
        }
        busy.delete(region);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    await device.close();
    cleanups.pop();
    expect(Buffer.compare(readFileSync(path), reference)).toBe(0);
  });

  test("bytes missing at the end of a truncated image read as zeros, not stale data", async () => {
    const path = image();
    const store = openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, io });
    cleanups.push(() => store.close());
    truncateSync(path, 4096 + 1024);
    const buffer = new MappedBuffer(8192);
    cleanups.push(() => buffer.release());
    buffer.bytes.fill(0xa5);
    const pending = store.read(4096, 8192, buffer.segments(8192), 0);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(buffer.bytes.every((byte) => byte === 0)).toBe(true);
  });

  test("a request the kernel fails is redone synchronously and reported as a WRITE ERROR", async () => {
    const path = image();
    openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES }).close();
    // A descriptor that cannot write under a store that believes it can: EBADF on both paths.
    const fd = libc.open(path, libc.O_RDONLY);
    const store = new FileBackstore(
      { path, fd, directFd: -1, directAlignmentBytes: 4096, blockDevice: false, readOnly: false, sync: false, punchHole: false, discard: false, seekData: false, allocationUnitBytes: 4096 },
      { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, syscalls: LIBC_SYSCALLS, asyncIo: sharedFileIo(io)!, inlineBytesMax: 0 },
    );
    const device = deviceOver(store);
    const completion = await device.submit(cdbs.write10(8, 8, FUA), { dataOut: new Uint8Array(8 * BLOCK_BYTES) });
    expect(completion.status).toBe(2);
    expect(cdbs.senseTriple(completion.sense)).toEqual([0x03, 0x0c, 0x00]);
    expect((await device.submit(cdbs.read10(8, 8), { dataInBytes: 8 * BLOCK_BYTES })).status).toBe(0);
  });
});

describe("file store I/O policy", () => {
  /** A file store over a fresh file in /dev/shm (tmpfs), opened with io "auto". */
  function memoryStore(): FileBackstore {
    const path = `/dev/shm/tcmu-test-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.img`;
    cleanups.push(() => rmSync(path, { force: true }));
    writeFileSync(path, ""); // paths under /dev are never created by the store
    const store = openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, io: "auto" });
    cleanups.push(() => store.close());
    return store;
  }

  test("a file in memory copies every transfer inline, durable ones and flushes included", () => {
    const store = memoryStore();
    const buffer = new MappedBuffer(1024 * 1024);
    cleanups.push(() => buffer.release());
    expect(store.read(0, 4096, buffer.segments(4096), 0)).toBeUndefined();
    expect(store.write(0, 4096, buffer.segments(4096), 0, true)).toBeUndefined();
    expect(store.read(0, 1024 * 1024, buffer.segments(1024 * 1024), 0)).toBeUndefined();
    expect(store.flush()).toBeUndefined();
  });

  test("on a disk file system cached reads and buffered writes run inline, durable writes and flushes go async", async () => {
    const path = image();
    const store = openFileBackstore(path, { sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, io: "auto" });
    cleanups.push(() => store.close());
    const buffer = new MappedBuffer(8192);
    cleanups.push(() => buffer.release());
    const segments = buffer.segments(8192);
    buffer.bytes.fill(0x3c);
    expect(store.write(0, 8192, segments, 0, false)).toBeUndefined();
    buffer.bytes.fill(0);
    expect(store.read(0, 8192, segments, 0)).toBeUndefined(); // in the page cache: RWF_NOWAIT
    expect(buffer.bytes.every((byte) => byte === 0x3c)).toBe(true);
    for (const pending of [store.write(0, 8192, segments, 0, true), store.flush()]) {
      expect(pending).toBeInstanceOf(Promise);
      await pending;
    }
    // Past the end of a truncated image the cache cannot answer: the engine reads, zeros follow.
    truncateSync(path, 4096);
    buffer.bytes.fill(0xa5);
    const tail = store.read(0, 8192, segments, 0);
    expect(tail).toBeInstanceOf(Promise);
    await tail;
    expect(buffer.bytes.subarray(4096).every((byte) => byte === 0)).toBe(true);
  });

  test("the thread's default (serve --file-io) replaces auto, and only auto", () => {
    cleanups.push(() => setDefaultFileIoMode("auto"));
    setDefaultFileIoMode("sync");
    expect(effectiveFileIoMode("auto")).toBe("sync");
    expect(sharedFileIo("auto")).toBeUndefined();
    expect(effectiveFileIoMode("threads")).toBe("threads");
    expect(() => setDefaultFileIoMode("fast" as never)).toThrow("file I/O mode fast");
  });
});
