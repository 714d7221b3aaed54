import { afterEach, describe, expect, test } from "bun:test";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  LBA_OUT_OF_RANGE,
  UNRECOVERED_READ_ERROR,
  WRITE_ERROR,
  WRITE_PROTECTED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { GatedBackstore, MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, pattern, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const LAST_LBA = SIZE / 512 - 1;

const forms = [
  { name: "6", read: cdbs.read6, write: cdbs.write6, lengthAt: 4 },
  { name: "10", read: cdbs.read10, write: cdbs.write10, lengthAt: 7 },
  { name: "12", read: cdbs.read12, write: cdbs.write12, lengthAt: 6 },
  {
    name: "16",
    read: (lba: number, blocks: number) => cdbs.read16(lba, blocks),
    write: (lba: number, blocks: number) => cdbs.write16(lba, blocks),
    lengthAt: 10,
  },
];

describe("READ and WRITE", () => {
  for (const form of forms) {
    test(`(${form.name}) round-trips data at the first and the last LBA`, async () => {
      device = simDevice({ sizeBytes: SIZE });
      for (const lba of [0, LAST_LBA - 3]) {
        const data = pattern(4 * 512, lba + 1);
        expectGood(await device.submit(form.write(lba, 4), { dataOut: data }));
        const read = await device.submit(form.read(lba, 4), { dataInBytes: 4 * 512 });
        expectGood(read);
        expect(read.dataIn).toEqual(data);
      }
    });

    test(`(${form.name}) beyond the last LBA is LBA OUT OF RANGE with the LBA in INFORMATION`, async () => {
      device = simDevice({ sizeBytes: SIZE });
      const d = device;
      await inBothSenseFormats(d, async (format) => {
        expectCheck(await d.submit(form.read(LAST_LBA, 2), { dataInBytes: 1024 }), LBA_OUT_OF_RANGE, { format, information: LAST_LBA });
        expectCheck(
          await d.submit(form.write(LAST_LBA + 1, 1), { dataOut: new Uint8Array(512) }),
          LBA_OUT_OF_RANGE,
          { format, information: LAST_LBA + 1 },
        );
      });
    });
  }

  test("(6) a transfer length of 0 means 256 blocks", async () => {
    device = simDevice({ sizeBytes: SIZE, scsi: { maxTransferBlocks: 256 } });
    const data = pattern(256 * 512, 9);
    expectGood(await device.submit(cdbs.write6(10, 0), { dataOut: data }));
    const read = await device.submit(cdbs.read6(10, 0), { dataInBytes: data.length });
    expect(read.dataIn).toEqual(data);
  });

  test("(10/12/16) a transfer length of 0 moves nothing and is GOOD, even at the end of the medium", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const pairs = [
      [cdbs.read10(LAST_LBA + 1, 0), cdbs.write10(0, 0)],
      [cdbs.read12(5, 0), cdbs.write12(5, 0)],
      [cdbs.read16(5, 0), cdbs.write16(5, 0)],
    ] as const;
    for (const [read, write] of pairs) {
      const completion = await device.submit(read, { dataInBytes: 512 });
      expectGood(completion);
      expect(completion.dataInBuffer.every((byte) => byte === 0)).toBe(true);
      expectGood(await device.submit(write));
    }
  });

  test("LBA + length overflowing 64 bits, and an LBA above 2^53, report the exact LBA", async () => {
    device = simDevice({ sizeBytes: SIZE });
    device.scsi.descriptorSense = true;
    expectCheck(
      await device.submit(cdbs.read16(0xffff_ffff_ffff_ffffn, 2), { dataInBytes: 1024 }),
      LBA_OUT_OF_RANGE,
      { information: 0xffff_ffff_ffff_ffffn },
    );
    expectCheck(
      await device.submit(cdbs.write16(2n ** 60n + 1n, 1), { dataOut: new Uint8Array(512) }),
      LBA_OUT_OF_RANGE,
      { information: 2n ** 60n + 1n },
    );
    device.scsi.descriptorSense = false;
    const fixed = expectCheck(await device.submit(cdbs.read16(2n ** 40n, 1), { dataInBytes: 512 }), LBA_OUT_OF_RANGE);
    expect(fixed.information).toBeUndefined();
  });

  test("a transfer above hw_max_sectors is INVALID FIELD IN CDB at the transfer length", async () => {
    device = simDevice({ sizeBytes: SIZE, scsi: { maxTransferBlocks: 8 } });
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      for (const form of forms) {
        expectCheck(
          await d.submit(form.read(0, 9), { dataInBytes: 9 * 512 }),
          INVALID_FIELD_IN_CDB,
          { format, field: { inCdb: true, byte: form.lengthAt } },
        );
      }
    });
    expectGood(await d.submit(cdbs.read10(0, 8), { dataInBytes: 8 * 512 }));
  });

  test("RDPROTECT and WRPROTECT other than zero are refused: no protection information", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const protectedCdbs = [
      cdbs.read10(0, 1, 0x20),
      cdbs.read12(0, 1, 0x40),
      cdbs.read16(0, 1, 0x80),
      cdbs.write10(0, 1, 0x20),
      cdbs.write16(0, 1, 0xe0),
    ];
    for (const cdb of protectedCdbs) {
      expectCheck(await device.submit(cdb, { dataInBytes: 512 }), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 7 } });
    }
  });

  test("a read-only store answers writes with DATA PROTECT / WRITE PROTECTED and still serves reads", async () => {
    device = simDevice({ backstore: new MemoryBackstore(SIZE, { readOnly: true }), sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), WRITE_PROTECTED);
    expectGood(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }));
  });

  test("a Data-Out buffer shorter than the transfer is refused and writes nothing", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.write10(0, 4), { dataOut: pattern(3 * 512, 1) }), INVALID_FIELD_IN_COMMAND_IU);
    expect(store.writes).toEqual([]);
  });

  test("a Data-In buffer shorter than the transfer gets the first bytes of the data, a cut block included", async () => {
    device = simDevice({ sizeBytes: SIZE });
    const data = pattern(4 * 512, 4);
    expectGood(await device.submit(cdbs.write10(0, 4), { dataOut: data }));
    for (const bytes of [2 * 512 + 100, 100, 1024]) {
      const read = await device.submit(cdbs.read10(0, 4), { dataInBytes: bytes });
      expectGood(read);
      expect(read.dataIn).toEqual(data.subarray(0, bytes));
    }
  });

  test("FUA makes a write durable even with the write cache on", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE, scsi: { writeCacheEnabled: true } });
    expectGood(await device.submit(cdbs.write10(0, 1, 0x08), { dataOut: new Uint8Array(512) }));
    expectGood(await device.submit(cdbs.write12(0, 1, 0x08), { dataOut: new Uint8Array(512) }));
    expectGood(await device.submit(cdbs.write16(0, 1, 0x08), { dataOut: new Uint8Array(512) }));
    expectGood(await device.submit(cdbs.write16(0, 1), { dataOut: new Uint8Array(512) }));
    expect(store.writes.map((write) => write.durable)).toEqual([true, true, true, false]);
  });

  test("backstore failures become MEDIUM ERROR with the failing LBA", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    store.failReadAt = 7 * 512;
    expectCheck(await device.submit(cdbs.read10(4, 8), { dataInBytes: 8 * 512 }), UNRECOVERED_READ_ERROR, { information: 7 });
    store.failWriteAt = 9 * 512;
    expectCheck(await device.submit(cdbs.write10(9, 1), { dataOut: new Uint8Array(512) }), WRITE_ERROR, { information: 9 });
  });

  test("an asynchronous store completes reads and writes through promises", async () => {
    const store = new GatedBackstore(new MemoryBackstore(SIZE));
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    const data = pattern(512, 77);
    const write = device.submit(cdbs.write10(3, 1), { dataOut: data });
    await store.whenHeld(1);
    store.release();
    expectGood(await write);
    const read = await device.submit(cdbs.read10(3, 1), { dataInBytes: 512 });
    expect(read.dataIn).toEqual(data);
  });
});
