import { afterEach, describe, expect, test } from "bun:test";
import { ALL_COMMANDS } from "../../src/scsi/commands.ts";
import { INVALID_FIELD_IN_CDB } from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, simDevice, u16At, u32At } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

/** A unit without ALUA serves every row but the target port group commands (alua.test.ts has those). */
const WITHOUT_ALUA = ALL_COMMANDS.filter((row) => row.name !== "REPORT TARGET PORT GROUPS" && row.name !== "SET TARGET PORT GROUPS");

async function allCommands(d: SimDevice, rctd = false) {
  const completion = await d.submit(cdbs.reportOpcodes(0, 0, 0, 8192, rctd), { dataInBytes: 8192 });
  expectGood(completion);
  const data = completion.dataIn;
  const size = rctd ? 20 : 8;
  expect(data.length).toBe(4 + u32At(data, 0));
  return Array.from({ length: u32At(data, 0) / size }, (_, index) => {
    const at = 4 + index * size;
    return {
      opcode: data[at]!,
      serviceAction: u16At(data, at + 2),
      flags: data[at + 5]!,
      cdbLength: u16At(data, at + 6),
      timeouts: rctd ? u16At(data, at + 8) : undefined,
    };
  });
}

describe("REPORT SUPPORTED OPERATION CODES", () => {
  test("lists exactly the rows of the dispatch table, with service actions and CDB lengths", async () => {
    device = simDevice();
    const listed = await allCommands(device);
    expect(listed.map((entry) => `${entry.opcode}/${entry.serviceAction}/${entry.cdbLength}/${entry.flags}`)).toEqual(
      WITHOUT_ALUA.map((row) => `${row.opcode}/${row.serviceAction ?? 0}/${row.usage.length}/${row.serviceAction === undefined ? 0 : 1}`),
    );
  });

  test("RCTD adds a command timeouts descriptor to each and sets CTDP", async () => {
    device = simDevice();
    const listed = await allCommands(device, true);
    expect(listed.every((entry) => entry.timeouts === 0x0a && (entry.flags & 0x02) !== 0)).toBe(true);
  });

  test("a store that cannot deallocate is not said to support UNMAP", async () => {
    device = simDevice({ backstore: new MemoryBackstore(1 << 20, { unmap: false }), sizeBytes: 1 << 20 });
    const listed = await allCommands(device);
    expect(listed.some((entry) => entry.opcode === 0x42)).toBe(false);
    expect(listed.length).toBe(WITHOUT_ALUA.length - 1);
  });

  test("one command by opcode returns its CDB usage data; by opcode and service action too", async () => {
    device = simDevice();
    const read = await device.submit(cdbs.reportOpcodes(1, 0x28), { dataInBytes: 512 });
    expectGood(read);
    const readRow = ALL_COMMANDS.find((row) => row.opcode === 0x28)!;
    expect(read.dataIn[1]! & 0x07).toBe(0x03);
    expect(u16At(read.dataIn, 2)).toBe(10);
    expect([...read.dataIn.subarray(4, 14)]).toEqual([...readRow.usage]);
    const capacity = await device.submit(cdbs.reportOpcodes(2, 0x9e, 0x10), { dataInBytes: 512 });
    expect(u16At(capacity.dataIn, 2)).toBe(16);
    expect(capacity.dataIn[5]).toBe(0x10);
    const either = await device.submit(cdbs.reportOpcodes(3, 0x12, 0, 512, true), { dataInBytes: 512 });
    expect(either.dataIn[1]).toBe(0x83);
    expect(either.dataIn.length).toBe(4 + 6 + 12);
  });

  test("an unsupported command is reported as not supported", async () => {
    device = simDevice();
    for (const cdb of [cdbs.reportOpcodes(1, 0x3b), cdbs.reportOpcodes(2, 0x9e, 0x1f), cdbs.reportOpcodes(3, 0x28, 1)]) {
      const completion = await device.submit(cdb, { dataInBytes: 64 });
      expectGood(completion);
      expect(completion.dataIn[1]! & 0x07).toBe(0x01);
      expect(u16At(completion.dataIn, 2)).toBe(0);
    }
  });

  test("the wrong option for an opcode's kind, and reserved options, are invalid fields", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.reportOpcodes(1, 0x9e), { dataInBytes: 64 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 3 } },
      );
      expectCheck(
        await d.submit(cdbs.reportOpcodes(2, 0x28), { dataInBytes: 64 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 3 } },
      );
      expectCheck(
        await d.submit(cdbs.reportOpcodes(5), { dataInBytes: 64 }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 2, bit: 2 } },
      );
    });
  });

  test("the allocation length cuts the list", async () => {
    device = simDevice();
    const completion = await device.submit(cdbs.reportOpcodes(0, 0, 0, 20), { dataInBytes: 4096 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(20);
    expect(u32At(completion.dataIn, 0)).toBe(WITHOUT_ALUA.length * 8);
  });
});

describe("REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", () => {
  test("reports ABORT TASK and LOGICAL UNIT RESET, in the short and the extended form", async () => {
    device = simDevice();
    const short = await device.submit(cdbs.reportTmfs(4), { dataInBytes: 64 });
    expectGood(short);
    expect([...short.dataIn]).toEqual([0x88, 0, 0, 0]);
    const extended = await device.submit(cdbs.reportTmfs(64, true), { dataInBytes: 64 });
    expect(extended.dataIn.length).toBe(16);
    expect(extended.dataIn[3]).toBe(0x0c);
  });
});
