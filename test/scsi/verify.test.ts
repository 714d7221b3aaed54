import { afterEach, describe, expect, test } from "bun:test";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  LBA_OUT_OF_RANGE,
  MISCOMPARE_DURING_VERIFY,
  UNRECOVERED_READ_ERROR,
  WRITE_PROTECTED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, pattern, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const LAST_LBA = SIZE / 512 - 1;

describe("VERIFY", () => {
  test("BYTCHK 0 reads the blocks and reports GOOD; a read error is MEDIUM ERROR with its LBA", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    expectGood(await device.submit(cdbs.verify10(0, 16)));
    expectGood(await device.submit(cdbs.verify16(LAST_LBA, 1)));
    store.failReadAt = 12 * 512;
    expectCheck(await device.submit(cdbs.verify10(8, 8)), UNRECOVERED_READ_ERROR, { information: 12 });
  });

  test("BYTCHK 1 compares Data-Out with the medium; a difference is MISCOMPARE with its byte offset", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const data = pattern(4 * 512, 3);
    expectGood(await device.submit(cdbs.write10(100, 4), { dataOut: data }));
    expectGood(await device.submit(cdbs.verify10(100, 4, 1), { dataOut: data }));
    const changed = data.slice();
    changed[1500] = changed[1500]! ^ 0xff;
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.verify16(100, 4, 1), { dataOut: changed }), MISCOMPARE_DURING_VERIFY, { format, information: 1500 });
    });
  });

  test("BYTCHK 3 compares one Data-Out block with every block of the range", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const block = pattern(512, 11);
    const four = new Uint8Array(4 * 512);
    for (let at = 0; at < four.length; at += 512) four.set(block, at);
    expectGood(await device.submit(cdbs.write10(20, 4), { dataOut: four }));
    expectGood(await device.submit(cdbs.verify10(20, 4, 3), { dataOut: block }));
    const other = block.slice();
    other[17] = other[17]! ^ 1;
    expectCheck(await device.submit(cdbs.verify10(20, 4, 3), { dataOut: other }), MISCOMPARE_DURING_VERIFY, { information: 17 });
  });

  test("a verification length of 0 is GOOD; BYTCHK 2 is a bad field; the range and length are checked", async () => {
    device = simDevice({ sizeBytes: SIZE, scsi: { maxTransferBlocks: 16 } });
    const d = device;
    expectGood(await d.submit(cdbs.verify10(5, 0)));
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.verify10(0, 1, 2)), INVALID_FIELD_IN_CDB, { format, field: { inCdb: true, byte: 1, bit: 2 } });
      expectCheck(await d.submit(cdbs.verify10(LAST_LBA, 2)), LBA_OUT_OF_RANGE, { format, information: LAST_LBA });
      expectCheck(await d.submit(cdbs.verify16(0, 17)), INVALID_FIELD_IN_CDB, { format, field: { inCdb: true, byte: 10 } });
      const protect = cdbs.verify10(0, 1);
      protect[1] = 0x20;
      expectCheck(await d.submit(protect), INVALID_FIELD_IN_CDB, { format, field: { inCdb: true, byte: 1, bit: 7 } });
    });
    expectCheck(await d.submit(cdbs.verify10(0, 2, 1), { dataOut: new Uint8Array(512) }), INVALID_FIELD_IN_COMMAND_IU);
  });
});

describe("WRITE AND VERIFY", () => {
  test("(10) and (16) write durably and verify; BYTCHK 1 compares what was sent", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE, scsi: { writeCacheEnabled: true } });
    const data = pattern(8 * 512, 5);
    expectGood(await device.submit(cdbs.writeAndVerify10(LAST_LBA - 7, 8), { dataOut: data }));
    expectGood(await device.submit(cdbs.writeAndVerify16(0, 8, 1), { dataOut: data }));
    expect(store.peek(0, data.length)).toEqual(data);
    expect(store.peek((LAST_LBA - 7) * 512, data.length)).toEqual(data);
    expect(store.writes.every((write) => write.durable)).toBe(true);
  });

  test("rejects BYTCHK above 1, protection, ranges, read-only stores and short Data-Out", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.writeAndVerify10(0, 1, 3), { dataOut: new Uint8Array(512) }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 2 } },
      );
      expectCheck(
        await d.submit(cdbs.writeAndVerify16(LAST_LBA + 1, 1), { dataOut: new Uint8Array(512) }),
        LBA_OUT_OF_RANGE,
        { format, information: LAST_LBA + 1 },
      );
    });
    expectCheck(await d.submit(cdbs.writeAndVerify10(0, 2), { dataOut: new Uint8Array(512) }), INVALID_FIELD_IN_COMMAND_IU);
    expectGood(await d.submit(cdbs.writeAndVerify10(0, 0)));
    d.scsi.close();
    await d.close();
    device = simDevice({ backstore: new MemoryBackstore(SIZE, { readOnly: true }), sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.writeAndVerify10(0, 1), { dataOut: new Uint8Array(512) }), WRITE_PROTECTED);
  });
});
