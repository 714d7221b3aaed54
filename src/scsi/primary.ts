// Primary commands (SPC-4) every logical unit answers: TEST UNIT READY and INQUIRY.
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU16, putAscii } from "./cdb.ts";
import type { ScsiDevice } from "./device.ts";
import { INVALID_FIELD_IN_CDB } from "./sense.ts";
import type { OpcodeRow } from "./table.ts";

export const TEST_UNIT_READY = 0x00;
export const INQUIRY = 0x12;

/** Standard INQUIRY data length: 36 mandatory bytes + vendor-specific up to 58 + 8 version descriptors. */
const STANDARD_INQUIRY_BYTES = 74;

function testUnitReady(): void {}

function inquiry(device: ScsiDevice, command: ScsiCommand): void {
  const cdb = command.cdb;
  const evpd = (cdb[1]! & 0x01) !== 0;
  const pageCode = cdb[2]!;
  const allocationLengthBytes = cdbU16(cdb, 3);
  if (!evpd) {
    // SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero.
    if (pageCode !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2 } });
    return device.replyScratch(command, standardInquiry(device), allocationLengthBytes);
  }
  return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2 } });
}

function standardInquiry(device: ScsiDevice): number {
  const data = device.scratch;
  const identity = device.config.identity;
  data.fill(0, 0, STANDARD_INQUIRY_BYTES);
  data[0] = 0x00; // peripheral qualifier 0, device type 0: direct access block device
  data[2] = 0x06; // VERSION: SPC-4
  data[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
  data[4] = STANDARD_INQUIRY_BYTES - 5;
  data[7] = 0x02; // CMDQUE: the ring takes many commands at once
  putAscii(data, 8, 8, identity.vendor);
  putAscii(data, 16, 16, identity.product);
  putAscii(data, 32, 4, identity.revision);
  // Version descriptors (SPC-4 table 29): SAM-5, SPC-4, SBC-3.
  const descriptors = [0x00a0, 0x0460, 0x04c0];
  descriptors.forEach((code, index) => {
    data[58 + 2 * index] = code >> 8;
    data[59 + 2 * index] = code & 0xff;
  });
  return STANDARD_INQUIRY_BYTES;
}

export const PRIMARY_COMMANDS: readonly OpcodeRow[] = [
  { opcode: TEST_UNIT_READY, name: "TEST UNIT READY", usage: [0x00, 0, 0, 0, 0, 0x07], execute: testUnitReady },
  { opcode: INQUIRY, name: "INQUIRY", usage: [0x12, 0x01, 0xff, 0xff, 0xff, 0x07], execute: inquiry },
];
