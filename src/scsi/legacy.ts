// Obsolete SCSI-2 positioning commands: REZERO UNIT, SEEK (6) and SEEK (10). SBC-3 dropped
// them, but legacy guests behind pass-through still send them, so the kernel target answers
// GOOD (sbc_parse_cdb: "Make them happy and return status GOOD") and so do we. A SEEK still
// names an LBA, which must exist (SBC-2 5.13).
import type { ScsiCommand } from "../ring/command.ts";
import { checkLbaRange } from "./block-checks.ts";
import { cdbU32, lba6 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const REZERO_UNIT = 0x01;
export const SEEK_6 = 0x0b;
export const SEEK_10 = 0x2b;

function rezeroUnit(): void {}

function seek6(device: LogicalUnit, command: ScsiCommand): void {
  checkLbaRange(device, command, lba6(command.cdb), 0, 1);
}

function seek10(device: LogicalUnit, command: ScsiCommand): void {
  checkLbaRange(device, command, cdbU32(command.cdb, 2), 0, 2);
}

export const LEGACY_COMMANDS: readonly OpcodeRow[] = [
  { opcode: REZERO_UNIT, name: "REZERO UNIT", usage: [REZERO_UNIT, 0, 0, 0, 0, CONTROL_NACA], execute: rezeroUnit, mediumAccess: true },
  { opcode: SEEK_6, name: "SEEK(6)", usage: [SEEK_6, 0x1f, 0xff, 0xff, 0, CONTROL_NACA], execute: seek6, mediumAccess: true },
  {
    opcode: SEEK_10,
    name: "SEEK(10)",
    usage: [SEEK_10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, CONTROL_NACA],
    execute: seek10,
    mediumAccess: true,
  },
];
