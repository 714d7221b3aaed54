import { afterEach, describe, expect, test } from "bun:test";
import { UNMAP_BLOCKS_MAX, UNMAP_DESCRIPTORS_MAX, WRITE_SAME_BLOCKS_MAX } from "../../src/scsi/limits.ts";
import {
  INVALID_COMMAND_OPERATION_CODE,
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  PARAMETER_LIST_LENGTH_ERROR,
  WRITE_PROTECTED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, pattern, simDevice, u32At, u64At, unmapList } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const BLOCKS = SIZE / 512;

function withStore(capabilities: ConstructorParameters<typeof MemoryBackstore>[1] = {}, sizeBytes = SIZE): MemoryBackstore {
  const store = new MemoryBackstore(sizeBytes, capabilities);
  device = simDevice({ backstore: store, sizeBytes });
  return store;
}

async function lbaStatus(d: SimDevice, lba: number, allocation = 1024): Promise<{ lba: bigint; blocks: number; status: number }[]> {
  const completion = await d.submit(cdbs.getLbaStatus(lba, allocation), { dataInBytes: allocation });
  expectGood(completion);
  const data = completion.dataIn;
  const count = (u32At(data, 0) - 4) / 16;
  return Array.from({ length: count }, (_, index) => ({
    lba: u64At(data, 8 + 16 * index),
    blocks: u32At(data, 16 + 16 * index),
    status: data[20 + 16 * index]! & 0x0f,
  }));
}

describe("UNMAP", () => {
  test("deallocates every described range: reads return zeros and GET LBA STATUS shows them deallocated", async () => {
    const store = withStore();
    const d = device!;
    expectGood(await d.submit(cdbs.write10(0, 64), { dataOut: pattern(64 * 512, 1) }));
    const list = unmapList([[0, 8], [16, 8], [BLOCKS - 1, 1], [30, 0]]);
    expectGood(await d.submit(cdbs.unmap(list.length), { dataOut: list }));
    expect(store.peek(0, 8 * 512).every((byte) => byte === 0)).toBe(true);
    expect(store.peek(8 * 512, 512).some((byte) => byte !== 0)).toBe(true);
    expect(store.zeroWrites.map((write) => [write.offsetBytes / 512, write.lengthBytes / 512, write.deallocate])).toEqual([
      [0, 8, true],
      [16, 8, true],
      [BLOCKS - 1, 1, true],
    ]);
    expect((await lbaStatus(d, 0))[0]).toEqual({ lba: 0n, blocks: 8, status: 1 });
  });

  test("an empty parameter list is GOOD; shorter than the header is PARAMETER LIST LENGTH ERROR; ANCHOR is refused", async () => {
    withStore();
    const d = device!;
    expectGood(await d.submit(cdbs.unmap(0)));
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.unmap(6), { dataOut: new Uint8Array(6) }), PARAMETER_LIST_LENGTH_ERROR, { format });
      const list = unmapList([[0, 1]]);
      expectCheck(
        await d.submit(cdbs.unmap(list.length, true), { dataOut: list }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 0 } },
      );
    });
  });

  test("the whole list is checked first: a bad descriptor after a good one unmaps nothing", async () => {
    const store = withStore();
    const d = device!;
    const outOfRange = unmapList([[0, 8], [BLOCKS - 4, 5]]);
    expectCheck(await d.submit(cdbs.unmap(outOfRange.length), { dataOut: outOfRange }), LBA_OUT_OF_RANGE, { information: BLOCKS - 4 });
    const huge = unmapList([[2n ** 62n, 1]]);
    d.scsi.descriptorSense = true;
    expectCheck(await d.submit(cdbs.unmap(huge.length), { dataOut: huge }), LBA_OUT_OF_RANGE, { information: 2n ** 62n });
    expect(store.zeroWrites).toEqual([]);
  });

  test("more descriptors or blocks than VPD B0 allows is INVALID FIELD IN PARAMETER LIST", async () => {
    withStore({}, 2 ** 33);
    const d = device!;
    const many = unmapList(Array.from({ length: UNMAP_DESCRIPTORS_MAX + 1 }, (_, index) => [index, 1] as [number, number]));
    expectCheck(
      await d.submit(cdbs.unmap(many.length), { dataOut: many }),
      INVALID_FIELD_IN_PARAMETER_LIST,
      { field: { inCdb: false, byte: 2 } },
    );
    const tooLong = unmapList([[0, UNMAP_BLOCKS_MAX], [UNMAP_BLOCKS_MAX, 1]]);
    expectCheck(
      await d.submit(cdbs.unmap(tooLong.length), { dataOut: tooLong }),
      INVALID_FIELD_IN_PARAMETER_LIST,
      { field: { inCdb: false, byte: 8 + 16 + 8 } },
    );
  });

  test("an incomplete last descriptor is ignored (SBC-3 5.28.2)", async () => {
    const store = withStore();
    const list = unmapList([[0, 1], [8, 1]], 16 + 10);
    expectGood(await device!.submit(cdbs.unmap(list.length), { dataOut: list }));
    expect(store.zeroWrites.length).toBe(1);
  });

  test("a Data-Out shorter than the parameter list is refused; a read-only store is WRITE PROTECTED", async () => {
    withStore();
    const list = unmapList([[0, 1]]);
    expectCheck(await device!.submit(cdbs.unmap(list.length + 16), { dataOut: list }), INVALID_FIELD_IN_COMMAND_IU);
    device!.scsi.close();
    await device!.close();
    withStore({ readOnly: true });
    expectCheck(await device!.submit(cdbs.unmap(list.length), { dataOut: list }), WRITE_PROTECTED);
  });

  test("a store that cannot deallocate does not have UNMAP at all", async () => {
    withStore({ unmap: false });
    const list = unmapList([[0, 1]]);
    expectCheck(await device!.submit(cdbs.unmap(list.length), { dataOut: list }), INVALID_COMMAND_OPERATION_CODE);
  });
});

describe("WRITE SAME", () => {
  test("(10) and (16) repeat the Data-Out block over the range, up to the last LBA", async () => {
    const store = withStore();
    const block = pattern(512, 42);
    expectGood(await device!.submit(cdbs.writeSame10(10, 5), { dataOut: block }));
    expectGood(await device!.submit(cdbs.writeSame16(BLOCKS - 3, 3), { dataOut: block }));
    for (const lba of [10, 14, BLOCKS - 3, BLOCKS - 1]) expect(store.peek(lba * 512, 512)).toEqual(block);
    expect(store.peek(15 * 512, 512).every((byte) => byte === 0)).toBe(true);
  });

  test("a long pattern write goes in chunks and covers every block", async () => {
    const store = withStore({}, 8 * SIZE);
    const block = pattern(512, 7);
    expectGood(await device!.submit(cdbs.writeSame16(0, 5000), { dataOut: block }));
    expect(store.peek(4999 * 512, 512)).toEqual(block);
    expect(store.writes.length).toBeGreaterThan(1);
  });

  test("zeros with UNMAP deallocate when the store reads deallocated blocks as zeros; otherwise zeros are written", async () => {
    const store = withStore();
    const zeros = new Uint8Array(512);
    expectGood(await device!.submit(cdbs.writeSame16(0, 8, 0x08), { dataOut: zeros }));
    expectGood(await device!.submit(cdbs.writeSame10(8, 8), { dataOut: zeros }));
    expectGood(await device!.submit(cdbs.writeSame16(16, 8, 0x08 | 0x01)));
    expect(store.zeroWrites.map((write) => write.deallocate)).toEqual([true, false, true]);
    device!.scsi.close();
    await device!.close();
    const noRz = withStore({ unmapReadsZeroes: false });
    expectGood(await device!.submit(cdbs.writeSame16(0, 8, 0x08), { dataOut: zeros }));
    expect(noRz.zeroWrites.map((write) => write.deallocate)).toEqual([false]);
  });

  test("a non-zero pattern with UNMAP is written, not deallocated", async () => {
    const store = withStore();
    const block = pattern(512, 3);
    expectGood(await device!.submit(cdbs.writeSame16(0, 2, 0x08), { dataOut: block }));
    expect(store.zeroWrites).toEqual([]);
    expect(store.peek(512, 512)).toEqual(block);
  });

  test("zero blocks (WSNZ), too many blocks, ANCHOR, PBDATA/LBDATA and WRPROTECT are invalid fields", async () => {
    withStore({}, 2 ** 32);
    const d = device!;
    const block = new Uint8Array(512);
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.writeSame10(0, 0), { dataOut: block }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 7 } },
      );
      expectCheck(
        await d.submit(cdbs.writeSame16(0, WRITE_SAME_BLOCKS_MAX + 1), { dataOut: block }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 10 } },
      );
      expectCheck(
        await d.submit(cdbs.writeSame16(0, 1, 0x10), { dataOut: block }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 4 } },
      );
      expectCheck(
        await d.submit(cdbs.writeSame10(0, 1, 0x02), { dataOut: block }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 2 } },
      );
      expectCheck(
        await d.submit(cdbs.writeSame10(0, 1, 0x20), { dataOut: block }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 7 } },
      );
    });
  });

  test("beyond the medium, on a read-only store, or without its Data-Out block, nothing is written", async () => {
    const store = withStore();
    const d = device!;
    expectCheck(
      await d.submit(cdbs.writeSame10(BLOCKS - 1, 2), { dataOut: new Uint8Array(512) }),
      LBA_OUT_OF_RANGE,
      { information: BLOCKS - 1 },
    );
    expectCheck(await d.submit(cdbs.writeSame10(0, 2)), INVALID_FIELD_IN_COMMAND_IU);
    expect(store.writes.length + store.zeroWrites.length).toBe(0);
    d.scsi.close();
    await d.close();
    withStore({ readOnly: true });
    expectCheck(await device!.submit(cdbs.writeSame16(0, 1, 0x01)), WRITE_PROTECTED);
  });
});

describe("GET LBA STATUS", () => {
  test("a fresh store is one deallocated extent; written blocks show as mapped extents", async () => {
    withStore();
    const d = device!;
    expect(await lbaStatus(d, 0)).toEqual([{ lba: 0n, blocks: BLOCKS, status: 1 }]);
    expectGood(await d.submit(cdbs.write10(16, 8), { dataOut: pattern(8 * 512, 1) }));
    expect(await lbaStatus(d, 0)).toEqual([
      { lba: 0n, blocks: 16, status: 1 },
      { lba: 16n, blocks: 8, status: 0 },
      { lba: 24n, blocks: BLOCKS - 24, status: 1 },
    ]);
    expect(await lbaStatus(d, 17)).toEqual([
      { lba: 17n, blocks: 7, status: 0 },
      { lba: 24n, blocks: BLOCKS - 24, status: 1 },
    ]);
  });

  test("the allocation length limits the descriptors; the header still says how many bytes a full reply has", async () => {
    withStore();
    const d = device!;
    expectGood(await d.submit(cdbs.write10(16, 8), { dataOut: pattern(8 * 512, 1) }));
    expect((await lbaStatus(d, 0, 24)).length).toBe(1);
    const short = await d.submit(cdbs.getLbaStatus(0, 4), { dataInBytes: 64 });
    expectGood(short);
    expect(short.dataIn.length).toBe(4);
  });

  test("a store that cannot tell reports everything mapped", async () => {
    withStore({ lbaStatus: false });
    expect(await lbaStatus(device!, 100)).toEqual([{ lba: 100n, blocks: BLOCKS - 100, status: 0 }]);
  });

  test("a starting LBA at or past the capacity is LBA OUT OF RANGE", async () => {
    withStore();
    const d = device!;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.getLbaStatus(BLOCKS, 64), { dataInBytes: 64 }), LBA_OUT_OF_RANGE, { format, information: BLOCKS });
    });
  });
});
