import { afterEach, describe, expect, test } from "bun:test";
import { naaDesignator, unitSerialFor } from "../../src/scsi/identity.ts";
import { INVALID_FIELD_IN_CDB } from "../../src/scsi/sense.ts";
import { SIM_STALE_BYTE } from "../../src/sim/kernel-sim.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, simDevice, u16At, u32At, u64At } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const ascii = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("standard INQUIRY", () => {
  test("reports a direct access SPC-4 device with the configured identity, CmdQue and 3PC", async () => {
    device = simDevice({ scsi: { identity: { vendor: "ACME", product: "Roadrunner", revision: "7.1", unitSerial: "x" } } });
    const completion = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
    expectGood(completion);
    const data = completion.dataIn;
    expect(data.length).toBe(96);
    expect(data[0]).toBe(0x00);
    expect(data[2]).toBe(0x06);
    expect(data[3]).toBe(0x02);
    expect(data[4]).toBe(91);
    expect(data[5]! & 0x08).toBe(0x08);
    expect(data[7]! & 0x02).toBe(0x02);
    expect(ascii(data.subarray(8, 16))).toBe("ACME    ");
    expect(ascii(data.subarray(16, 32))).toBe("Roadrunner      ");
    expect(ascii(data.subarray(32, 36))).toBe("7.1 ");
    expect([u16At(data, 58), u16At(data, 60), u16At(data, 62)]).toEqual([0x00a0, 0x0460, 0x04c0]);
  });

  test("an allocation length shorter than the data returns that many bytes and no stale bytes after them", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.inquiry(36), { dataInBytes: 4096 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(36);
    expect(completion.dataInBuffer.subarray(36).includes(SIM_STALE_BYTE)).toBe(false);
  });

  test("PAGE CODE without EVPD, and CMDDT, are invalid fields", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.inquiry(96, false, 0x80), { dataInBytes: 96 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 2 } },
      );
      expectCheck(
        await d.submit(cdbs.inquiry(96, false, 0, 0x02), { dataInBytes: 96 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 1 } },
      );
    });
  });
});

describe("VPD pages", () => {
  const vpd = async (d: SimDevice, page: number, allocation = 1024) => {
    const completion = await d.submit(cdbs.inquiry(allocation, true, page), { dataInBytes: allocation });
    expectGood(completion);
    expect(completion.dataIn[1]).toBe(page);
    return completion.dataIn;
  };

  test("0x00 lists every page served, in ascending order", async () => {
    device = simDevice();
    const data = await vpd(device, 0x00);
    expect([...data.subarray(4, 4 + u16At(data, 2))]).toEqual([0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2]);
  });

  test("0x80 is the configured unit serial; an empty one is derived from the device name", async () => {
    device = simDevice({ scsi: { identity: { vendor: "LIO-ORG", product: "p", revision: "1", unitSerial: "abc-123" } } });
    const data = await vpd(device, 0x80);
    expect(ascii(data.subarray(4, 4 + u16At(data, 2)))).toBe("abc-123");
    device.scsi.close();
    await device.close();
    device = new SimDevice({ scsi: { name: "disk9", identity: { vendor: "LIO-ORG", product: "p", revision: "1", unitSerial: "" } } });
    const derived = await vpd(device, 0x80);
    expect(ascii(derived.subarray(4, 4 + u16At(derived, 2)))).toBe(unitSerialFor("", "disk9"));
  });

  test("0x83 carries the NAA 6h designator derived from the serial and a T10 vendor id", async () => {
    const serial = "6a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
    device = simDevice({ scsi: { identity: { vendor: "LIO-ORG", product: "tcmu-appliance", revision: "1", unitSerial: serial } } });
    const data = await vpd(device, 0x83);
    expect([...data.subarray(4, 8)]).toEqual([0x01, 0x03, 0x00, 16]);
    expect(data.subarray(8, 24)).toEqual(naaDesignator(serial));
    expect(data[8]! >> 4).toBe(6);
    expect([data[24], data[25]]).toEqual([0x02, 0x01]);
    const t10 = ascii(data.subarray(28, 28 + data[27]!));
    expect(t10).toBe(`LIO-ORG tcmu-appliance:${serial}`);
    expect(u16At(data, 2)).toBe(20 + 4 + data[27]!);
  });

  test("0x86 reports HEADSUP/ORDSUP/SIMPSUP and V_SUP only with the write cache on", async () => {
    device = simDevice({ scsi: { writeCacheEnabled: true } });
    const data = await vpd(device, 0x86);
    expect(data[5]).toBe(0x07);
    expect(data[6]).toBe(0x01);
    device.scsi.writeCacheEnabled = false;
    expect((await vpd(device, 0x86))[6]).toBe(0x00);
  });

  test("0xB0 reports WSNZ, COMPARE AND WRITE, transfer, unmap and write same limits", async () => {
    device = simDevice({ scsi: { maxTransferBlocks: 256 } });
    const data = await vpd(device, 0xb0);
    expect(u16At(data, 2)).toBe(0x3c);
    expect(data[4]).toBe(0x01);
    expect(data[5]).toBe(128);
    expect(u32At(data, 8)).toBe(256);
    expect(u32At(data, 12)).toBe(256);
    expect(u32At(data, 20)).toBeGreaterThan(0);
    expect(u32At(data, 24)).toBeGreaterThan(0);
    expect(u32At(data, 28)).toBe(Math.max(1, (device.backstore.capabilities.unmapGranularityBytes ?? 512) / 512));
    expect(u64At(data, 36)).toBeGreaterThan(0n);
  });

  test("0xB0 reports hw_max_sectors as the optimal transfer, never above the maximum, and unmap limits initiators call sane", async () => {
    device = simDevice({ scsi: { maxTransferBlocks: 2048, optimalTransferBlocks: 128 } });
    let data = await vpd(device, 0xb0);
    expect(u32At(data, 8)).toBe(2048);
    expect(u32At(data, 12)).toBe(128);
    // libiscsi's Inquiry.BlockLimits: an explicit MAXIMUM UNMAP LBA COUNT must be at most 2^20.
    expect(u32At(data, 20)).toBeLessThanOrEqual(1024 * 1024);
    await device.close();
    device = simDevice({ scsi: { maxTransferBlocks: 64, optimalTransferBlocks: 128 } });
    data = await vpd(device, 0xb0);
    expect(u32At(data, 12)).toBe(64);
  });

  test("0xB1 reports a non-rotating medium; 0xB2 reports LBPU, LBPWS, LBPWS10 and LBPRZ of the RAM store", async () => {
    device = simDevice();
    expect(u16At(await vpd(device, 0xb1), 4)).toBe(1);
    const provisioning = await vpd(device, 0xb2);
    expect(provisioning[5]).toBe(0x80 | 0x40 | 0x20 | 0x04);
    expect(provisioning[6]! & 0x07).toBe(0x02);
  });

  test("a page is cut to the allocation length", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.inquiry(10, true, 0x83), { dataInBytes: 512 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(10);
    expect(completion.dataInBuffer.subarray(10).every((byte) => byte === 0)).toBe(true);
  });

  test("an unsupported page is INVALID FIELD IN CDB at byte 2", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      for (const page of [0x01, 0x84, 0x85, 0x8f, 0xb3, 0xff]) {
        expectCheck(
          await d.submit(cdbs.inquiry(255, true, page), { dataInBytes: 255 }),
          INVALID_FIELD_IN_CDB,
          { format, field: { inCdb: true, byte: 2 } },
        );
      }
    });
  });
});
