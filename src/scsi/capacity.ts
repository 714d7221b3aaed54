// READ CAPACITY (10) and (16), SBC-3 5.16 and 5.17.
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU32, putU16, putU32, putU64 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const READ_CAPACITY_10 = 0x25;
export const SERVICE_ACTION_IN_16 = 0x9e;
export const SAI_READ_CAPACITY_16 = 0x10;

const READ_CAPACITY_10_BYTES = 8;
const READ_CAPACITY_16_BYTES = 32;
/** PMI, byte 8 bit 0 of READ CAPACITY(10). */
const PMI_BIT = 0x01;

function readCapacity10(device: LogicalUnit, command: ScsiCommand): void {
  const cdb = command.cdb;
  // SBC-2 (obsolete in SBC-3, still checked by compliance suites and by the kernel): with
  // PMI = 0 the LOGICAL BLOCK ADDRESS field must be zero.
  if ((cdb[8]! & PMI_BIT) === 0 && cdbU32(cdb, 2) !== 0) {
    return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2 } });
  }
  const data = device.scratch;
  // SBC-3 5.16: a last LBA past 0xFFFFFFFE reports 0xFFFFFFFF so the initiator uses (16).
  putU32(data, 0, Math.min(device.capacityBlocks - 1, 0xffff_ffff));
  putU32(data, 4, device.blockSizeBytes);
  device.replyScratch(command, READ_CAPACITY_10_BYTES, READ_CAPACITY_10_BYTES);
}

function readCapacity16(device: LogicalUnit, command: ScsiCommand): void {
  const data = device.scratch;
  const capabilities = device.backstore.capabilities;
  data.fill(0, 0, READ_CAPACITY_16_BYTES);
  putU64(data, 0, device.capacityBlocks - 1);
  putU32(data, 8, device.blockSizeBytes);
  // Byte 12: no protection (P_TYPE, PROT_EN zero). Byte 13: LOGICAL BLOCKS PER PHYSICAL BLOCK
  // EXPONENT. Bytes 14-15: LBPME (UNMAP really deallocates), LBPRZ (deallocated blocks read
  // zeros), LOWEST ALIGNED LOGICAL BLOCK ADDRESS.
  data[13] = (device.config.physicalBlockExponent ?? 0) & 0x0f;
  const lbpme = capabilities.unmap ? 0x8000 : 0;
  const lbprz = capabilities.unmap && capabilities.unmapReadsZeroes ? 0x4000 : 0;
  putU16(data, 14, lbpme | lbprz | ((device.config.lowestAlignedLba ?? 0) & 0x3fff));
  device.replyScratch(command, READ_CAPACITY_16_BYTES, cdbU32(command.cdb, 10));
}

export const CAPACITY_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: READ_CAPACITY_10,
    name: "READ CAPACITY(10)",
    usage: [READ_CAPACITY_10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, PMI_BIT, CONTROL_NACA],
    execute: readCapacity10,
  },
  {
    opcode: SERVICE_ACTION_IN_16,
    serviceAction: SAI_READ_CAPACITY_16,
    name: "READ CAPACITY(16)",
    usage: [SERVICE_ACTION_IN_16, SAI_READ_CAPACITY_16, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CONTROL_NACA],
    execute: readCapacity16,
  },
];
