import { afterEach, describe, expect, test } from "bun:test";
import { LBA_OUT_OF_RANGE, WRITE_ERROR } from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { BackstoreError } from "../../backstores/types.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const BLOCKS = SIZE / 512;

describe("SYNCHRONIZE CACHE", () => {
  test("(10) and (16) flush the store, with or without IMMED, over a range or to the end (0 blocks)", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    expectGood(await device.submit(cdbs.syncCache10(0, 0)));
    expectGood(await device.submit(cdbs.syncCache10(10, 20, true)));
    expectGood(await device.submit(cdbs.syncCache16(BLOCKS - 1, 1)));
    expect(store.flushCount).toBe(3);
  });

  test("a range beyond the medium is LBA OUT OF RANGE and nothing is flushed", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.syncCache10(BLOCKS - 1, 2)), LBA_OUT_OF_RANGE, { format, information: BLOCKS - 1 });
      expectCheck(await d.submit(cdbs.syncCache16(BLOCKS + 1, 0)), LBA_OUT_OF_RANGE, { format, information: BLOCKS + 1 });
    });
    expect(store.flushCount).toBe(0);
  });

  test("a failing flush is a MEDIUM ERROR", async () => {
    const store = new MemoryBackstore(SIZE);
    store.flush = () => {
      throw new BackstoreError("write", 0, "flush failed");
    };
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.syncCache10(0, 0)), WRITE_ERROR);
  });
});

describe("PRE-FETCH", () => {
  test("(10) and (16) are GOOD inside the medium, to its end with length 0", async () => {
    device = simDevice({ sizeBytes: SIZE });
    expectGood(await device.submit(cdbs.preFetch10(0, 100)));
    expectGood(await device.submit(cdbs.preFetch16(BLOCKS - 1, 1)));
    expectGood(await device.submit(cdbs.preFetch16(5, 0)));
  });

  test("beyond the medium is LBA OUT OF RANGE", async () => {
    device = simDevice({ sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.preFetch10(BLOCKS - 1, 2)), LBA_OUT_OF_RANGE, { information: BLOCKS - 1 });
    expectCheck(await device.submit(cdbs.preFetch16(2n ** 63n, 1)), LBA_OUT_OF_RANGE);
  });
});
