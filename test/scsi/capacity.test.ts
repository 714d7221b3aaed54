import { afterEach, describe, expect, test } from "bun:test";
import { INVALID_FIELD_IN_CDB } from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, simDevice, u16At, u32At, u64At } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

describe("READ CAPACITY(10)", () => {
  test("reports the last LBA and the block size", async () => {
    device = simDevice({ sizeBytes: 64 * 1024 * 1024, blockSizeBytes: 4096 });
    const completion = await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 });
    expectGood(completion);
    expect([u32At(completion.dataIn, 0), u32At(completion.dataIn, 4)]).toEqual([16383, 4096]);
  });

  test("saturates at FFFFFFFFh for a disk of more than 2^32 blocks", async () => {
    device = simDevice({ backstore: new MemoryBackstore(2 ** 42), sizeBytes: 2 ** 42 });
    const completion = await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 });
    expect(u32At(completion.dataIn, 0)).toBe(0xffff_ffff);
  });

  test("an LBA without PMI is an invalid field; with PMI it is accepted", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.readCapacity10(5), { dataInBytes: 8 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 2 } },
      );
    });
    expectGood(await d.submit(cdbs.readCapacity10(5, true), { dataInBytes: 8 }));
  });
});

describe("READ CAPACITY(16)", () => {
  test("reports the 64-bit last LBA, block size, LBPME/LBPRZ, exponent and lowest aligned LBA", async () => {
    device = simDevice({ backstore: new MemoryBackstore(2 ** 42), sizeBytes: 2 ** 42, scsi: { physicalBlockExponent: 3, lowestAlignedLba: 7 } });
    const completion = await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 });
    expectGood(completion);
    const data = completion.dataIn;
    expect(u64At(data, 0)).toBe(BigInt(2 ** 42 / 512 - 1));
    expect(u32At(data, 8)).toBe(512);
    expect(data[12]).toBe(0);
    expect(data[13]).toBe(3);
    expect(u16At(data, 14)).toBe(0xc000 | 7);
  });

  test("a store that cannot deallocate reports neither LBPME nor LBPRZ", async () => {
    device = simDevice({ backstore: new MemoryBackstore(1 << 20, { unmap: false }), sizeBytes: 1 << 20 });
    const completion = await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 });
    expect(completion.dataIn[14]! & 0xc0).toBe(0);
  });

  test("the allocation length cuts the reply", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.readCapacity16(12), { dataInBytes: 32 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(12);
    expect(completion.dataInBuffer.subarray(12).every((byte) => byte === 0)).toBe(true);
  });
});
