import { afterEach, describe, expect, test } from "bun:test";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  PARAMETER_LIST_LENGTH_ERROR,
  SAVING_PARAMETERS_NOT_SUPPORTED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, parseSense, simDevice, u16At, u32At, u64At } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

/** Splits MODE SENSE data into header fields, block descriptor and pages. */
function parseModeData(data: Uint8Array, tenByte: boolean) {
  const headerBytes = tenByte ? 8 : 4;
  const modeDataLength = tenByte ? u16At(data, 0) + 2 : data[0]! + 1;
  const deviceSpecific = data[tenByte ? 3 : 2]!;
  const descriptorBytes = tenByte ? u16At(data, 6) : data[3]!;
  const pages = new Map<number, Uint8Array>();
  for (let at = headerBytes + descriptorBytes; at < modeDataLength; at += data[at + 1]! + 2) {
    pages.set(data[at]! & 0x3f, data.subarray(at, at + data[at + 1]! + 2));
  }
  const descriptor = data.subarray(headerBytes, headerBytes + descriptorBytes);
  return { modeDataLength, deviceSpecific, descriptor, pages, longLba: tenByte && (data[4]! & 1) === 1 };
}

/** A MODE SELECT parameter list from a page (header zeroed, no block descriptor). */
function selectList(page: Uint8Array, tenByte: boolean): Uint8Array {
  const headerBytes = tenByte ? 8 : 4;
  const list = new Uint8Array(headerBytes + page.length);
  list.set(page, headerBytes);
  list[headerBytes] = page[0]! & 0x3f;
  return list;
}

async function currentPage(d: SimDevice, page: number): Promise<Uint8Array> {
  const completion = await d.submit(cdbs.modeSense10(page, 255, { dbd: true }), { dataInBytes: 255 });
  expectGood(completion);
  return parseModeData(completion.dataIn, true).pages.get(page)!.slice();
}

describe("MODE SENSE", () => {
  test("(6) all pages: header, DPOFUA, a block descriptor, then pages 01h 08h 0Ah 1Ch", async () => {
    device = simDevice({ sizeBytes: 8 * 1024 * 1024 });
    const completion = await device.submit(cdbs.modeSense6(0x3f, 255), { dataInBytes: 255 });
    expectGood(completion);
    const parsed = parseModeData(completion.dataIn, false);
    expect(parsed.modeDataLength).toBe(completion.dataIn.length);
    expect(parsed.deviceSpecific).toBe(0x10);
    expect(u32At(parsed.descriptor, 0)).toBe(16384);
    expect(u32At(parsed.descriptor, 4) & 0xffffff).toBe(512);
    expect([...parsed.pages.keys()]).toEqual([0x01, 0x08, 0x0a, 0x1c]);
    expect([...parsed.pages.values()].map((page) => page.length)).toEqual([12, 20, 12, 12]);
    const control = parsed.pages.get(0x0a)!;
    expect(control[2]).toBe(0x02);
    expect(control[3]).toBe(0x10);
    expect(control[5]).toBe(0x40);
  });

  test("(10) with DBD has no block descriptor; with LLBAA on a huge disk the descriptor is long", async () => {
    device = simDevice({ backstore: new MemoryBackstore(2 ** 45), sizeBytes: 2 ** 45 });
    const withoutDescriptor = await device.submit(cdbs.modeSense10(0x08, 255, { dbd: true }), { dataInBytes: 255 });
    expect(parseModeData(withoutDescriptor.dataIn, true).descriptor.length).toBe(0);
    const long = parseModeData((await device.submit(cdbs.modeSense10(0x08, 255, { llbaa: true }), { dataInBytes: 255 })).dataIn, true);
    expect(long.longLba).toBe(true);
    expect(long.descriptor.length).toBe(16);
    expect(u64At(long.descriptor, 0)).toBe(BigInt(2 ** 45 / 512));
    const short = parseModeData((await device.submit(cdbs.modeSense10(0x08, 255), { dataInBytes: 255 })).dataIn, true);
    expect(u32At(short.descriptor, 0)).toBe(0xffff_ffff);
  });

  test("the caching page shows WCE as the device has it; changeable values show WCE and D_SENSE only", async () => {
    device = simDevice({ scsi: { writeCacheEnabled: true } });
    expect((await currentPage(device, 0x08))[2]).toBe(0x04);
    const changeableData = await device.submit(cdbs.modeSense6(0x3f, 255, { pc: 1, dbd: true }), { dataInBytes: 255 });
    const changeable = parseModeData(changeableData.dataIn, false);
    expect([...changeable.pages.get(0x08)!.subarray(2)].filter((byte) => byte !== 0)).toEqual([0x04]);
    expect([...changeable.pages.get(0x0a)!.subarray(2)].filter((byte) => byte !== 0)).toEqual([0x04]);
    expect([...changeable.pages.get(0x01)!.subarray(2)].every((byte) => byte === 0)).toBe(true);
  });

  test("default values are the configured ones, whatever MODE SELECT did since", async () => {
    device = simDevice({ scsi: { writeCacheEnabled: false } });
    device.scsi.writeCacheEnabled = true;
    const defaults = parseModeData((await device.submit(cdbs.modeSense6(0x08, 255, { pc: 2, dbd: true }), { dataInBytes: 255 })).dataIn, false);
    expect(defaults.pages.get(0x08)![2]).toBe(0x00);
  });

  test("a read-only backstore sets WP in the device-specific parameter", async () => {
    device = simDevice({ backstore: new MemoryBackstore(1 << 20, { readOnly: true }), sizeBytes: 1 << 20 });
    const completion = await device.submit(cdbs.modeSense6(0x3f, 255), { dataInBytes: 255 });
    expect(parseModeData(completion.dataIn, false).deviceSpecific & 0x80).toBe(0x80);
  });

  test("an allocation length shorter than the data cuts it", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.modeSense10(0x3f, 10), { dataInBytes: 255 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(10);
    expect(completion.dataInBuffer.subarray(10).every((byte) => byte === 0)).toBe(true);
  });

  test("saved values, unknown pages and unknown subpages are refused with the field named", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.modeSense6(0x08, 255, { pc: 3 }), { dataInBytes: 255 }),
        SAVING_PARAMETERS_NOT_SUPPORTED,
        { format, field: { inCdb: true, byte: 2, bit: 7 } },
      );
      expectCheck(
        await d.submit(cdbs.modeSense6(0x03, 255), { dataInBytes: 255 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 2, bit: 5 } },
      );
      expectCheck(
        await d.submit(cdbs.modeSense10(0x08, 255, { subpage: 1 }), { dataInBytes: 255 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 3 } },
      );
    });
    expectGood(await d.submit(cdbs.modeSense10(0x3f, 255, { subpage: 0xff }), { dataInBytes: 255 }));
  });
});

describe("MODE SELECT", () => {
  test("(6) and (10) toggle WCE: the device's write cache, MODE SENSE and the control plane hook follow", async () => {
    const seen: boolean[] = [];
    device = simDevice({ scsi: { writeCacheEnabled: false, onWriteCacheChange: (enabled) => seen.push(enabled) } });
    for (const tenByte of [false, true]) {
      const page = await currentPage(device, 0x08);
      page[2] = 0x04;
      const on = selectList(page, tenByte);
      expectGood(await device.submit(tenByte ? cdbs.modeSelect10(on.length) : cdbs.modeSelect6(on.length), { dataOut: on }));
      expect(device.scsi.writeCacheEnabled).toBe(true);
      expect((await currentPage(device, 0x08))[2]).toBe(0x04);
      page[2] = 0x00;
      const off = selectList(page, tenByte);
      expectGood(await device.submit(tenByte ? cdbs.modeSelect10(off.length) : cdbs.modeSelect6(off.length), { dataOut: off }));
      expect(device.scsi.writeCacheEnabled).toBe(false);
    }
    expect(seen).toEqual([true, false, true, false]);
  });

  test("with WCE=0 every write is durable before status; with WCE=1 only FUA writes are; turning WCE off flushes", async () => {
    const store = new MemoryBackstore(1 << 20);
    device = simDevice({ backstore: store, sizeBytes: 1 << 20, scsi: { writeCacheEnabled: true } });
    expectGood(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expectGood(await device.submit(cdbs.write10(0, 1, 0x08), { dataOut: new Uint8Array(512) }));
    const page = await currentPage(device, 0x08);
    page[2] = 0;
    const list = selectList(page, false);
    expectGood(await device.submit(cdbs.modeSelect6(list.length), { dataOut: list }));
    expect(store.flushCount).toBe(1);
    expectGood(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expect(store.writes.map((write) => write.durable)).toEqual([false, true, true]);
  });

  test("D_SENSE switches CHECK CONDITION sense to descriptor format and back", async () => {
    device = simDevice();
    const page = await currentPage(device, 0x0a);
    page[2]! |= 0x04;
    const list = selectList(page, true);
    expectGood(await device.submit(cdbs.modeSelect10(list.length), { dataOut: list }));
    expect(device.scsi.descriptorSense).toBe(true);
    const beyond = await device.submit(cdbs.read16(2n ** 40n, 1), { dataInBytes: 512 });
    expect(expectCheck(beyond, LBA_OUT_OF_RANGE).format).toBe("descriptor");
    expect(parseSense(beyond.sense).information).toBe(2n ** 40n);
    page[2]! &= ~0x04;
    const back = selectList(page, true);
    expectGood(await device.submit(cdbs.modeSelect10(back.length), { dataOut: back }));
    expect(expectCheck(await device.submit(cdbs.read16(2n ** 40n, 1), { dataInBytes: 512 }), LBA_OUT_OF_RANGE).format).toBe("fixed");
  });

  test("a block descriptor that keeps the capacity and block length is accepted", async () => {
    device = simDevice({ sizeBytes: 1 << 20 });
    const page = await currentPage(device, 0x08);
    const list = new Uint8Array(4 + 8 + page.length);
    list[3] = 8;
    new DataView(list.buffer).setUint32(4, 2048);
    new DataView(list.buffer).setUint32(8, 512);
    list.set(page, 12);
    expectGood(await device.submit(cdbs.modeSelect6(list.length), { dataOut: list }));
    new DataView(list.buffer).setUint32(4, 0);
    expectGood(await device.submit(cdbs.modeSelect6(list.length), { dataOut: list }));
  });

  test("an empty parameter list is GOOD and changes nothing", async () => {
    device = simDevice({ scsi: { writeCacheEnabled: true } });
    expectGood(await device.submit(cdbs.modeSelect10(0)));
    expect(device.scsi.writeCacheEnabled).toBe(true);
  });

  test("SP, PF=0 and a Data-Out shorter than the parameter list are refused", async () => {
    device = simDevice();
    const page = await currentPage(device, 0x08);
    const list = selectList(page, false);
    expectCheck(
      await device.submit(cdbs.modeSelect6(list.length, { sp: true }), { dataOut: list }),
      INVALID_FIELD_IN_CDB,
      { field: { inCdb: true, byte: 1, bit: 0 } },
    );
    expectCheck(
      await device.submit(cdbs.modeSelect6(list.length, { pf: false }), { dataOut: list }),
      INVALID_FIELD_IN_CDB,
      { field: { inCdb: true, byte: 1, bit: 4 } },
    );
    expectCheck(await device.submit(cdbs.modeSelect6(list.length + 4), { dataOut: list }), INVALID_FIELD_IN_COMMAND_IU);
  });

  test("bad parameter lists are refused with the byte and bit named, and nothing is applied", async () => {
    device = simDevice({ sizeBytes: 1 << 20, scsi: { writeCacheEnabled: false } });
    const d = device;
    const caching = await currentPage(d, 0x08);
    const control = await currentPage(d, 0x0a);
    await inBothSenseFormats(d, async (format) => {
      const reject = async (list: Uint8Array, byte?: number, bit?: number, reason = INVALID_FIELD_IN_PARAMETER_LIST) => {
        const expected = byte === undefined ? { format } : { format, field: { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) } };
        expectCheck(await d.submit(cdbs.modeSelect10(list.length), { dataOut: list }), reason, expected);
      };
      await reject(new Uint8Array(6), undefined, undefined, PARAMETER_LIST_LENGTH_ERROR);
      // RCD is not changeable: byte 2 bit 0 of the page, after an 8-byte header.
      const rcd = caching.slice();
      rcd[2] = 0x05;
      await reject(selectList(rcd, true), 8 + 2, 0);
      // A WCE change next to an invalid control page is not applied either.
      const both = new Uint8Array(8 + caching.length + control.length);
      both.set(caching, 8);
      both[8 + 2] = 0x04;
      both.set(control, 8 + caching.length);
      both[8 + caching.length + 3] = 0x00; // QUEUE ALGORITHM MODIFIER
      await reject(both, 8 + caching.length + 3, 4);
      expect(d.scsi.writeCacheEnabled).toBe(false);
      const unknown = caching.slice();
      unknown[0] = 0x03;
      await reject(selectList(unknown, true), 8, 5);
      const wrongLength = caching.slice(0, 12);
      wrongLength[1] = 10;
      await reject(selectList(wrongLength, true), 9);
      const truncated = selectList(caching, true).subarray(0, 8 + 10);
      await reject(truncated, undefined, undefined, PARAMETER_LIST_LENGTH_ERROR);
      const descriptor = new Uint8Array(8 + 8 + caching.length);
      descriptor[7] = 8;
      new DataView(descriptor.buffer).setUint32(12, 4096);
      descriptor.set(caching, 16);
      await reject(descriptor, 12);
      descriptor[7] = 4;
      await reject(descriptor, 6);
    });
  });
});
