import { afterEach, describe, expect, test } from "bun:test";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import { DeviceRegistry } from "../../src/scsi/device-registry.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../../src/scsi/device.ts";
import {
  CAPACITY_DATA_HAS_CHANGED,
  INVALID_COMMAND_OPERATION_CODE,
  MODE_PARAMETERS_CHANGED,
  NO_ADDITIONAL_SENSE,
  NOT_READY_INITIALIZING_COMMAND_REQUIRED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, parseSense, simDevice, u32At } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

describe("unit attention", () => {
  test("a raised unit attention is reported once, to the next command other than INQUIRY and REQUEST SENSE", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      d.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
      expectGood(await d.submit(cdbs.inquiry(96), { dataInBytes: 96 }));
      expectCheck(await d.submit(cdbs.testUnitReady()), CAPACITY_DATA_HAS_CHANGED, { format });
      expectGood(await d.submit(cdbs.testUnitReady()));
    });
  });

  test("unknown opcodes report a pending unit attention too (SAM-5 5.14)", async () => {
    device = simDevice();
    device.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
    const bogus = Uint8Array.of(0xc5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expectCheck(await device.submit(bogus), CAPACITY_DATA_HAS_CHANGED);
    expectCheck(await device.submit(bogus), INVALID_COMMAND_OPERATION_CODE);
  });

  test("several unit attentions are reported in order, and the same one is not queued twice", async () => {
    device = simDevice();
    device.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
    device.scsi.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
    device.scsi.raiseUnitAttention(MODE_PARAMETERS_CHANGED);
    expectCheck(await device.submit(cdbs.testUnitReady()), CAPACITY_DATA_HAS_CHANGED);
    expectCheck(await device.submit(cdbs.testUnitReady()), MODE_PARAMETERS_CHANGED);
    expectGood(await device.submit(cdbs.testUnitReady()));
  });

  test("raiseUnitAttention takes only UNIT ATTENTION reasons", () => {
    device = simDevice();
    expect(() => device!.scsi.raiseUnitAttention(NO_ADDITIONAL_SENSE)).toThrow("not a unit attention");
  });

  test("resize() changes the capacity and raises CAPACITY DATA HAS CHANGED", async () => {
    device = simDevice({ sizeBytes: 4 * 1024 * 1024 });
    device.scsi.resize(2 * 1024 * 1024);
    expectCheck(await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 }), CAPACITY_DATA_HAS_CHANGED);
    const capacity = await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 });
    expect(u32At(capacity.dataIn, 0)).toBe(4095);
  });
});

describe("stopped unit", () => {
  test("after START STOP UNIT with START=0, medium access is NOT READY / INITIALIZING COMMAND REQUIRED until START=1", async () => {
    device = simDevice();
    expectGood(await device.submit(cdbs.startStop(false)));
    expect(device.scsi.stopped).toBe(true);
    expectCheck(await device.submit(cdbs.testUnitReady()), NOT_READY_INITIALIZING_COMMAND_REQUIRED);
    expectCheck(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_INITIALIZING_COMMAND_REQUIRED);
    expectCheck(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), NOT_READY_INITIALIZING_COMMAND_REQUIRED);
    expectGood(await device.submit(cdbs.inquiry(36), { dataInBytes: 36 }));
    expectGood(await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 }));
    const requestSense = await device.submit(cdbs.requestSense(252), { dataInBytes: 252 });
    expect(parseSense(requestSense.dataIn)).toMatchObject({ key: 2, asc: 0x04, ascq: 0x02 });
    expectGood(await device.submit(cdbs.startStop(true)));
    expectGood(await device.submit(cdbs.testUnitReady()));
  });
});

describe("device registry", () => {
  test("devices register under their NAA on construction and leave on close()", async () => {
    const registry = new DeviceRegistry();
    const backstore = new RamBackstore(1024 * 1024);
    const config = {
      name: "reg0",
      blockSizeBytes: 512,
      sizeBytes: 1024 * 1024,
      maxTransferBlocks: 128,
      writeCacheEnabled: false,
      identity: { ...DEFAULT_IDENTITY, unitSerial: "" },
      registry,
    };
    const scsi = new ScsiDevice(backstore, config);
    expect(registry.find(scsi.naaKey)).toBe(scsi);
    const twin = new ScsiDevice(backstore, { ...config });
    expect(twin.naaKey).toBe(scsi.naaKey);
    // Two devices with one designator are ambiguous: a copy manager must not pick one.
    expect(registry.find(scsi.naaKey)).toBeUndefined();
    twin.close();
    expect(registry.find(scsi.naaKey)).toBe(scsi);
    scsi.close();
    scsi.close();
    expect(registry.find(scsi.naaKey)).toBeUndefined();
    expect(registry.size).toBe(0);
    backstore.close();
  });

  test("the constructor refuses a block size that is not a multiple of 512 and a zero maximum transfer length", () => {
    const backstore = new RamBackstore(1024 * 1024);
    const config = {
      name: "x",
      blockSizeBytes: 512,
      sizeBytes: 1 << 20,
      maxTransferBlocks: 1,
      writeCacheEnabled: false,
      identity: DEFAULT_IDENTITY,
      registry: new DeviceRegistry(),
    };
    expect(() => new ScsiDevice(backstore, { ...config, blockSizeBytes: 1000 })).toThrow("multiple of 512");
    expect(() => new ScsiDevice(backstore, { ...config, maxTransferBlocks: 0 })).toThrow("maximum transfer length");
    backstore.close();
  });
});
