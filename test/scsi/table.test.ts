import { afterEach, describe, expect, test } from "bun:test";
import { scsiCommandSize } from "../../src/ring/command.ts";
import { ALL_COMMANDS } from "../../src/scsi/commands.ts";
import { INVALID_COMMAND_OPERATION_CODE, INVALID_FIELD_IN_CDB } from "../../src/scsi/sense.ts";
import { OpcodeTable, SERVICE_ACTION_OPCODES } from "../../src/scsi/table.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { cdbs, expectCheck, inBothSenseFormats, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  await device?.close();
  device = undefined;
});

describe("opcode table", () => {
  test("every row's usage data is as long as the CDB the engine reads for its opcode", () => {
    for (const row of ALL_COMMANDS) expect(row.usage.length).toBe(scsiCommandSize(Uint8Array.of(row.opcode)));
  });

  test("rows are unique and service-action opcodes always carry a service action", () => {
    const keys = ALL_COMMANDS.map((row) => `${row.opcode}/${row.serviceAction ?? "-"}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const row of ALL_COMMANDS) expect(row.serviceAction !== undefined).toBe(SERVICE_ACTION_OPCODES.has(row.opcode));
  });

  test("a row whose usage data disagrees with the CDB length is refused at construction", () => {
    const row = { opcode: 0x28, name: "bad", usage: [0x28, 0, 0], execute: () => {} };
    expect(() => new OpcodeTable([row])).toThrow("usage data is 3 bytes");
  });

  test("every row dispatches: a CDB with the row's opcode never answers INVALID COMMAND OPERATION CODE", async () => {
    // With ALUA, so that the target port group rows are served too.
    const alua = { groups: [{ id: 1, name: "a", state: "active-optimized" as const, preferred: true }], localGroupId: 1, protocolIdentifier: 6 };
    device = simDevice({ scsi: { alua } });
    for (const row of ALL_COMMANDS) {
      const cdb = new Uint8Array(row.usage.length);
      cdb[0] = row.opcode;
      if (row.serviceAction !== undefined) cdb[1] = row.serviceAction;
      const completion = await device.submit(cdb, { dataInBytes: 512 });
      if (completion.status !== 0) expect(completion.sense[12] === 0x20 || completion.sense[2] === 0x20).toBe(false);
    }
  });
});

describe("dispatch", () => {
  test("an opcode the table lacks is ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE pointing at byte 0", async () => {
    device = simDevice();
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      for (const opcode of [0x04, 0x07, 0x3b, 0x4d, 0x7e, 0xc0, 0xff]) {
        const cdb = new Uint8Array(scsiCommandSize(Uint8Array.of(opcode)));
        cdb[0] = opcode;
        expectCheck(await d.submit(cdb), INVALID_COMMAND_OPERATION_CODE, { format, field: { inCdb: true, byte: 0 } });
      }
    });
  });

  test("a known service-action opcode with an unknown service action is INVALID FIELD IN CDB at byte 1", async () => {
    device = simDevice();
    const cdb = cdbs.readCapacity16();
    cdb[1] = 0x1f;
    expectCheck(await device.submit(cdb), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
    const lid4 = cdbs.extendedCopy(0);
    lid4[1] = 0x01;
    expectCheck(await device.submit(lid4), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
  });

  test("NACA set in the CONTROL byte is refused: ACA is not supported (SAM-5 5.2)", async () => {
    device = simDevice();
    const tur = cdbs.testUnitReady();
    tur[5] = 0x04;
    expectCheck(await device.submit(tur), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 5, bit: 2 } });
    const read = cdbs.read16(0, 1);
    read[15] = 0x04;
    expectCheck(await device.submit(read, { dataInBytes: 512 }), INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 15, bit: 2 } });
  });
});
