// INQUIRY (SPC-4 6.6): standard data, or a vital product data page (vpd.ts) with EVPD=1.
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU16, putAscii, putU16 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";
import { PERIPHERAL_DIRECT_ACCESS, buildVpdPage } from "./vpd.ts";

export const INQUIRY = 0x12;
const EXTENDED_COPY = 0x83;
const EXTENDED_COPY_LID1 = 0x00;

/** 96 bytes, ADDITIONAL LENGTH 91, as spc_emulate_inquiry_std() returns. */
const STANDARD_INQUIRY_BYTES = 96;
const EVPD_BIT = 0x01;
/** CMDDT (byte 1 bit 1) is obsolete; SPC-3 7.6.1 says a unit without it refuses the bit. */
const CMDDT_BIT = 0x02;
/** Version descriptors (SPC-4 table 146): SAM-5, SPC-4, SBC-3. */
/** Standard data byte 5 bits 5..4: TPGS. */
const TPGS_IMPLICIT_AND_EXPLICIT = 0x30;
const VERSION_DESCRIPTORS = [0x00a0, 0x0460, 0x04c0] as const;

function inquiry(device: LogicalUnit, command: ScsiCommand): void {
  const cdb = command.cdb;
  const pageCode = cdb[2]!;
  const allocationLengthBytes = cdbU16(cdb, 3);
  if ((cdb[1]! & CMDDT_BIT) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 1 } });
  if ((cdb[1]! & EVPD_BIT) === 0) {
    // SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero.
    if (pageCode !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2 } });
    return device.replyScratch(command, standardInquiry(device), allocationLengthBytes);
  }
  const length = buildVpdPage(device, pageCode);
  if (length === undefined) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2 } });
  return device.replyScratch(command, length, allocationLengthBytes);
}

function standardInquiry(device: LogicalUnit): number {
  const data = device.scratch;
  const identity = device.config.identity;
  data.fill(0, 0, STANDARD_INQUIRY_BYTES);
  data[0] = PERIPHERAL_DIRECT_ACCESS;
  data[2] = 0x06; // VERSION: SPC-4
  // RESPONSE DATA FORMAT 2. NORMACA 0 (no ACA) and HISUP 0 as the kernel reports: REPORT LUNS
  // and LUN addressing belong to the kernel target, not to us.
  data[3] = 0x02;
  data[4] = STANDARD_INQUIRY_BYTES - 5;
  // 3PC: EXTENDED COPY is served (derived from the table, so the bit cannot lie).
  if (device.table.rowFor(EXTENDED_COPY, EXTENDED_COPY_LID1) !== undefined) data[5] = 0x08;
  // TPGS 11b (SPC-4 6.6.2): implicit and explicit ALUA, when the unit has target port groups —
  // implicit because the medium's lock moves by itself, explicit through SET TARGET PORT GROUPS.
  if (device.alua !== undefined) data[5]! |= TPGS_IMPLICIT_AND_EXPLICIT;
  data[7] = 0x02; // CMDQUE: the ring takes many commands at once
  putAscii(data, 8, 8, identity.vendor);
  putAscii(data, 16, 16, identity.product);
  putAscii(data, 32, 4, identity.revision);
  VERSION_DESCRIPTORS.forEach((code, index) => putU16(data, 58 + 2 * index, code));
  return STANDARD_INQUIRY_BYTES;
}

export const INQUIRY_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: INQUIRY,
    name: "INQUIRY",
    usage: [INQUIRY, EVPD_BIT | CMDDT_BIT, 0xff, 0xff, 0xff, CONTROL_NACA],
    execute: inquiry,
    ignoresUnitAttention: true,
  },
];
