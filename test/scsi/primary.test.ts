import { afterEach, describe, expect, test } from "bun:test";
import { CAPACITY_DATA_HAS_CHANGED, INVALID_FIELD_IN_CDB } from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, parseSense, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

describe("TEST UNIT READY", () => {
  test("a started unit is ready", async () => {
    device = simDevice();
    expectGood(await device.submit(cdbs.testUnitReady()));
  });
});

describe("REQUEST SENSE", () => {
  test("with nothing pending it returns NO SENSE in fixed format, GOOD status", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.requestSense(252), { dataInBytes: 252 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(18);
    expect(parseSense(completion.dataIn)).toMatchObject({ format: "fixed", key: 0, asc: 0, ascq: 0 });
  });

  test("DESC=1 asks for descriptor format whatever D_SENSE says", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.requestSense(252, true), { dataInBytes: 252 });
    expect(completion.dataIn.length).toBe(8);
    expect(parseSense(completion.dataIn)).toMatchObject({ format: "descriptor", key: 0 });
  });

  test("returns and clears a pending unit attention", async () => {
    device = simDevice();
    device.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
    const completion = await device.submit(cdbs.requestSense(252), { dataInBytes: 252 });
    expectGood(completion);
    expect(parseSense(completion.dataIn)).toMatchObject({ key: 6, asc: 0x2a, ascq: 0x09 });
    expectGood(await device.submit(cdbs.testUnitReady()));
  });

  test("an allocation length shorter than the sense cuts it, and the rest of the buffer is zeroed", async () => {
    device = simDevice();
    device.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
    const completion = await device.submit(cdbs.requestSense(8), { dataInBytes: 64 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(8);
    expect(completion.dataIn[2]).toBe(0x06);
    expect(completion.dataInBuffer.subarray(8).every((byte) => byte === 0)).toBe(true);
  });
});

describe("START STOP UNIT", () => {
  test("START=1 with or without IMMED is GOOD", async () => {
    device = simDevice();
    expectGood(await device.submit(cdbs.startStop(true)));
    expectGood(await device.submit(cdbs.startStop(true, { immed: false })));
  });

  test("power conditions, their modifier and LOEJ are refused with the field named", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.startStop(true, { powerCondition: 2 })),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 4, bit: 7 } },
      );
      expectCheck(
        await d.submit(cdbs.startStop(true, { modifier: 1 })),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 3, bit: 3 } },
      );
      expectCheck(
        await d.submit(cdbs.startStop(false, { loej: true })),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 4, bit: 1 } },
      );
    });
    expect(device.scsi.stopped).toBe(false);
  });

  test("STOP with NO_FLUSH stops without flushing; START makes the unit ready again", async () => {
    device = simDevice();
    expectGood(await device.submit(cdbs.startStop(false, { noFlush: true })));
    expect(device.scsi.stopped).toBe(true);
    expectGood(await device.submit(cdbs.startStop(true)));
    expect(device.scsi.stopped).toBe(false);
  });
});

describe("PREVENT ALLOW MEDIUM REMOVAL", () => {
  test("allow and prevent are accepted (the medium is not removable); obsolete values are refused", async () => {
    device = simDevice();
    expectGood(await device.submit(cdbs.preventAllow(0)));
    expectGood(await device.submit(cdbs.preventAllow(1)));
    expectCheck(await device.submit(cdbs.preventAllow(2)), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 4, bit: 1 } });
    expectCheck(await device.submit(cdbs.preventAllow(3)), INVALID_FIELD_IN_CDB);
  });
});
