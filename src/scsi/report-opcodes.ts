// REPORT SUPPORTED OPERATION CODES and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.35,
// 6.36), MAINTENANCE IN service actions 0Ch and 0Dh. The command list is generated from the same
// opcode table that dispatches, so it cannot drift from what the unit really does.
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU16, cdbU32, putU16, putU32 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB } from "./sense.ts";
import { CONTROL_NACA, SERVICE_ACTION_OPCODES, type OpcodeRow } from "./table.ts";

export const MAINTENANCE_IN = 0xa3;
export const MI_REPORT_SUPPORTED_OPERATION_CODES = 0x0c;
export const MI_REPORT_SUPPORTED_TMFS = 0x0d;

const RCTD_BIT = 0x80;
const REPORTING_OPTIONS_MASK = 0x07;
const ALL_COMMANDS = 0;
const ONE_OPCODE = 1;
const ONE_SERVICE_ACTION = 2;
const ONE_OPCODE_OR_SERVICE_ACTION = 3;
/** SUPPORT field (SPC-4 table 274). */
const SUPPORT_NOT_SUPPORTED = 0x1;
const SUPPORT_STANDARD = 0x3;
const COMMAND_DESCRIPTOR_BYTES = 8;
/** Command timeouts descriptor (SPC-4 6.35.4): times 0, "not specified". */
const TIMEOUTS_DESCRIPTOR_BYTES = 12;

function reportSupportedOperationCodes(device: LogicalUnit, command: ScsiCommand): void {
  const cdb = command.cdb;
  const withTimeouts = (cdb[2]! & RCTD_BIT) !== 0;
  const options = cdb[2]! & REPORTING_OPTIONS_MASK;
  const allocationLengthBytes = cdbU32(cdb, 6);
  const rows = device.table.rows.filter((row) => row.supported === undefined || row.supported(device));
  if (options === ALL_COMMANDS) return device.replyScratch(command, allCommands(device, rows, withTimeouts), allocationLengthBytes);
  if (options > ONE_OPCODE_OR_SERVICE_ACTION) {
    return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2, bit: 2 } });
  }
  const opcode = cdb[3]!;
  const serviceAction = cdbU16(cdb, 4);
  const served = rows.some((row) => row.opcode === opcode);
  const hasServiceActions = served && SERVICE_ACTION_OPCODES.has(opcode);
  // SPC-4 6.35.1: option 1 names an opcode without service actions, option 2 one with them;
  // the other kind is a bad field. Option 3 accepts either.
  const wrongKind = options === ONE_OPCODE ? hasServiceActions : options === ONE_SERVICE_ACTION && served && !hasServiceActions;
  if (wrongKind) {
    return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 3 } });
  }
  const wantedServiceAction = options === ONE_OPCODE ? 0 : serviceAction;
  const row = rows.find((candidate) => candidate.opcode === opcode && (candidate.serviceAction ?? 0) === wantedServiceAction);
  return device.replyScratch(command, oneCommand(device, row, withTimeouts), allocationLengthBytes);
}

function allCommands(device: LogicalUnit, rows: readonly OpcodeRow[], withTimeouts: boolean): number {
  const data = device.scratch;
  const descriptorBytes = COMMAND_DESCRIPTOR_BYTES + (withTimeouts ? TIMEOUTS_DESCRIPTOR_BYTES : 0);
  const length = 4 + rows.length * descriptorBytes;
  data.fill(0, 0, length);
  putU32(data, 0, length - 4);
  rows.forEach((row, index) => {
    const at = 4 + index * descriptorBytes;
    data[at] = row.opcode;
    putU16(data, at + 2, row.serviceAction ?? 0);
    data[at + 5] = (withTimeouts ? 0x02 : 0) | (row.serviceAction === undefined ? 0 : 0x01); // CTDP, SERVACTV
    putU16(data, at + 6, row.usage.length);
    if (withTimeouts) putU16(data, at + COMMAND_DESCRIPTOR_BYTES, TIMEOUTS_DESCRIPTOR_BYTES - 2);
  });
  return length;
}

function oneCommand(device: LogicalUnit, row: OpcodeRow | undefined, withTimeouts: boolean): number {
  const data = device.scratch;
  data.fill(0, 0, 4 + 32 + TIMEOUTS_DESCRIPTOR_BYTES);
  if (row === undefined) {
    data[1] = SUPPORT_NOT_SUPPORTED;
    return 4;
  }
  data[1] = (withTimeouts ? 0x80 : 0) | SUPPORT_STANDARD;
  putU16(data, 2, row.usage.length);
  data.set(row.usage, 4);
  const end = 4 + row.usage.length;
  if (!withTimeouts) return end;
  putU16(data, end, TIMEOUTS_DESCRIPTOR_BYTES - 2);
  return end + TIMEOUTS_DESCRIPTOR_BYTES;
}

/**
 * SPC-4 6.36: task management is done by the kernel target, and what LIO's target_tmr_work()
 * performs is ABORT TASK and LOGICAL UNIT RESET (the others it rejects). REPD asks for the
 * 16-byte extended form, whose timeout fields stay zero ("not specified").
 */
function reportSupportedTmfs(device: LogicalUnit, command: ScsiCommand): void {
  const extended = (command.cdb[2]! & 0x80) !== 0;
  const data = device.scratch;
  const length = extended ? 16 : 4;
  data.fill(0, 0, length);
  data[0] = 0x80 | 0x08; // ATS, LURS
  if (extended) data[3] = 0x0c; // ADDITIONAL DATA LENGTH
  device.replyScratch(command, length, cdbU32(command.cdb, 6));
}

export const REPORT_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: MAINTENANCE_IN,
    serviceAction: MI_REPORT_SUPPORTED_OPERATION_CODES,
    name: "REPORT SUPPORTED OPERATION CODES",
    usage: [
      MAINTENANCE_IN,
      MI_REPORT_SUPPORTED_OPERATION_CODES,
      RCTD_BIT | REPORTING_OPTIONS_MASK,
      ...Array<number>(7).fill(0xff),
      0,
      CONTROL_NACA,
    ],
    execute: reportSupportedOperationCodes,
  },
  {
    opcode: MAINTENANCE_IN,
    serviceAction: MI_REPORT_SUPPORTED_TMFS,
    name: "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS",
    usage: [MAINTENANCE_IN, MI_REPORT_SUPPORTED_TMFS, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CONTROL_NACA],
    execute: reportSupportedTmfs,
  },
];
