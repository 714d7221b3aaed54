// Unit state commands: TEST UNIT READY, REQUEST SENSE (SPC-4 6.47, 6.39), START STOP UNIT and
// PREVENT ALLOW MEDIUM REMOVAL (SBC-3 5.25, 5.11).
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import {
  INVALID_FIELD_IN_CDB,
  NO_ADDITIONAL_SENSE,
  NOT_READY_INITIALIZING_COMMAND_REQUIRED,
  SENSE_LENGTH_MAX,
  buildSense,
  type SenseReason,
} from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const TEST_UNIT_READY = 0x00;
export const REQUEST_SENSE = 0x03;
export const START_STOP_UNIT = 0x1b;
export const PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;

/** REQUEST SENSE byte 1 bit 0: descriptor format requested. */
const DESC_BIT = 0x01;
// START STOP UNIT byte 4.
const START_BIT = 0x01;
const LOEJ_BIT = 0x02;
const NO_FLUSH_BIT = 0x04;

/** A stopped unit answers NOT READY; the row is a medium access row, so execute() does that. */
function testUnitReady(): void {}

/**
 * SPC-4 6.39: the sense data the unit would report now — a pending unit attention (which it
 * clears), else NOT READY while stopped, else NO SENSE — in fixed format unless DESC is set.
 */
function requestSense(device: LogicalUnit, command: ScsiCommand): void {
  const descriptorFormat = (command.cdb[1]! & DESC_BIT) !== 0;
  const state = device.stopped ? NOT_READY_INITIALIZING_COMMAND_REQUIRED : NO_ADDITIONAL_SENSE;
  const reason: SenseReason = device.takeUnitAttention() ?? state;
  const length = buildSense(device.scratch.subarray(0, SENSE_LENGTH_MAX), reason, descriptorFormat);
  device.replyScratch(command, length, command.cdb[4]!);
}

/**
 * SBC-3 5.25. START=1 makes the unit ready, START=0 stops it (flushing first unless NO_FLUSH)
 * until the next START=1. There are no power conditions (no power condition mode page) and no
 * removable medium, so POWER CONDITION, its MODIFIER and LOEJ must be zero. IMMED is accepted
 * either way: the work is done before status, which IMMED=0 asks for and IMMED=1 permits.
 * (The kernel insists on IMMED=1 and refuses to stop; sg_start without --immed then fails.)
 */
function startStopUnit(device: LogicalUnit, command: ScsiCommand): IoResult {
  const cdb = command.cdb;
  if ((cdb[3]! & 0x0f) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 3, bit: 3 } });
  if ((cdb[4]! & 0xf0) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 4, bit: 7 } });
  if ((cdb[4]! & LOEJ_BIT) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 4, bit: 1 } });
  if ((cdb[4]! & START_BIT) !== 0) {
    device.stopped = false;
    return;
  }
  device.stopped = true;
  if ((cdb[4]! & NO_FLUSH_BIT) !== 0) return;
  return flushBackstore(device, command);
}

async function flushBackstore(device: LogicalUnit, command: ScsiCommand): Promise<void> {
  try {
    await device.backstore.flush();
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

/**
 * SBC-3 5.11: the medium is not removable (RMB=0), so allowing or preventing removal changes
 * nothing; the obsolete PREVENT values 10b and 11b are refused.
 */
function preventAllowMediumRemoval(device: LogicalUnit, command: ScsiCommand): void {
  if ((command.cdb[4]! & 0x02) !== 0) device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 4, bit: 1 } });
}

export const PRIMARY_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: TEST_UNIT_READY,
    name: "TEST UNIT READY",
    usage: [TEST_UNIT_READY, 0, 0, 0, 0, CONTROL_NACA],
    execute: testUnitReady,
    mediumAccess: true,
  },
  {
    opcode: REQUEST_SENSE,
    name: "REQUEST SENSE",
    usage: [REQUEST_SENSE, DESC_BIT, 0, 0, 0xff, CONTROL_NACA],
    execute: requestSense,
    ignoresUnitAttention: true,
  },
  {
    opcode: START_STOP_UNIT,
    name: "START STOP UNIT",
    usage: [START_STOP_UNIT, 0x01, 0, 0x0f, 0xf7, CONTROL_NACA],
    execute: startStopUnit,
  },
  {
    opcode: PREVENT_ALLOW_MEDIUM_REMOVAL,
    name: "PREVENT ALLOW MEDIUM REMOVAL",
    usage: [PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0x03, CONTROL_NACA],
    execute: preventAllowMediumRemoval,
  },
];
