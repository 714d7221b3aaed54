// REPORT TARGET PORT GROUPS and SET TARGET PORT GROUPS (SPC-4 6.37, 6.45): MAINTENANCE IN and
// MAINTENANCE OUT service action 0Ah. Both exist only on a unit configured with ALUA (alua.ts
// keeps the states); elsewhere the rows are unsupported and answer as unknown commands, as before.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { ALUA_STATE_CODES, aluaStateFromCode } from "./alua.ts";
import { cdbU32, paramU16, putU16, putU32 } from "./cdb.ts";
import type { LogicalUnit, TargetPortGroupChange, TargetPortGroupStatus, UnitAlua } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB, INVALID_FIELD_IN_PARAMETER_LIST, PARAMETER_LIST_LENGTH_ERROR } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const MAINTENANCE_IN = 0xa3;
export const MAINTENANCE_OUT = 0xa4;
export const MI_REPORT_TARGET_PORT_GROUPS = 0x0a;
export const MO_SET_TARGET_PORT_GROUPS = 0x0a;

/** RTPG byte 1 bits 7..5: PARAMETER DATA FORMAT. */
const PARAMETER_DATA_FORMAT_MASK = 0xe0;
const FORMAT_LENGTH_ONLY = 0b000;
const FORMAT_EXTENDED = 0b001;
const LENGTH_ONLY_HEADER_BYTES = 4;
const EXTENDED_HEADER_BYTES = 8;
/** Extended header byte 4: FORMAT TYPE 001b in bits 6..4. */
const EXTENDED_FORMAT_TYPE = 0x10;
const GROUP_DESCRIPTOR_BYTES = 8;
/** Target port descriptor (SPC-4 table 172): 2 obsolete bytes, RELATIVE TARGET PORT IDENTIFIER. */
const PORT_DESCRIPTOR_BYTES = 4;
/** Each gateway's group has one port, the one a TCMU handler can name (docs/ha.md). */
const PORTS_PER_GROUP = 1;
const PREF_BIT = 0x80;
/** T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP: the states this unit can be in (no offline, no LBA dependent). */
const SUPPORTED_STATES = 0x80 | 0x08 | 0x04 | 0x02 | 0x01;

/** STPG parameter list: 4 reserved bytes, then 4-byte set target port group descriptors. */
const STPG_HEADER_BYTES = 4;
const STPG_DESCRIPTOR_BYTES = 4;
const STPG_STATE_MASK = 0x0f;

/** The rows exist only with ALUA (their `supported`), so execute() never runs them without it. */
function aluaOf(unit: LogicalUnit): UnitAlua {
  if (unit.alua === undefined) throw new Error("target port group command on a unit without ALUA");
  return unit.alua;
}

/**
 * SPC-4 6.37. Every group of the unit on every gateway with its state, PREF, supported states,
 * status code and its one port. RETURN DATA LENGTH counts the descriptors after the header in
 * both formats, as target_emulate_report_target_port_groups() fills it (initiators read it that
 * way). Allowed in every state; the states may take the medium's word, hence the await.
 */
function reportTargetPortGroups(unit: LogicalUnit, command: ScsiCommand): IoResult {
  const cdb = command.cdb;
  const alua = aluaOf(unit);
  const format = (cdb[1]! & PARAMETER_DATA_FORMAT_MASK) >> 5;
  if (format !== FORMAT_LENGTH_ONLY && format !== FORMAT_EXTENDED) {
    return unit.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 7 } });
  }
  return replyGroups(unit, command, alua, format === FORMAT_EXTENDED, cdbU32(cdb, 6));
}

async function replyGroups(unit: LogicalUnit, command: ScsiCommand, alua: UnitAlua, extended: boolean, allocationLengthBytes: number): Promise<void> {
  const groups = await alua.report();
  // Built after the await, then copied at once: scratch is shared with every other command.
  const length = encodeGroups(unit.scratch, groups, extended, alua.implicitTransitionSeconds);
  unit.replyScratch(command, length, allocationLengthBytes);
}

function encodeGroups(data: Uint8Array, groups: readonly TargetPortGroupStatus[], extended: boolean, implicitTransitionSeconds: number): number {
  const headerBytes = extended ? EXTENDED_HEADER_BYTES : LENGTH_ONLY_HEADER_BYTES;
  const groupBytes = GROUP_DESCRIPTOR_BYTES + PORTS_PER_GROUP * PORT_DESCRIPTOR_BYTES;
  const length = headerBytes + groups.length * groupBytes;
  data.fill(0, 0, length);
  putU32(data, 0, length - headerBytes);
  if (extended) {
    data[4] = EXTENDED_FORMAT_TYPE;
    data[5] = implicitTransitionSeconds;
  }
  groups.forEach((group, index) => {
    const at = headerBytes + index * groupBytes;
    data[at] = (group.preferred ? PREF_BIT : 0) | ALUA_STATE_CODES[group.state];
    data[at + 1] = SUPPORTED_STATES;
    putU16(data, at + 2, group.id);
    data[at + 5] = group.statusCode;
    data[at + 7] = PORTS_PER_GROUP;
    // The group's one port: its relative target port identifier is the group id (docs/ha.md).
    putU16(data, at + GROUP_DESCRIPTOR_BYTES + 2, group.id);
  });
  return length;
}

/**
 * SPC-4 6.45. The whole list is checked before anything changes, so a bad descriptor changes no
 * group. Only the primary states can be set: transitioning is the target's own business, and
 * LBA dependent and offline are states this unit never takes.
 */
function setTargetPortGroups(unit: LogicalUnit, command: ScsiCommand): IoResult {
  const alua = aluaOf(unit);
  const listBytes = cdbU32(command.cdb, 6);
  // SPC-4 6.45: a zero length transfers nothing and changes nothing; it is not an error.
  if (listBytes === 0) return;
  if (listBytes < STPG_HEADER_BYTES || (listBytes - STPG_HEADER_BYTES) % STPG_DESCRIPTOR_BYTES !== 0) {
    return unit.fail(command, PARAMETER_LIST_LENGTH_ERROR);
  }
  const list = unit.parameterList(command, listBytes);
  if (list === undefined) return unit.fail(command, PARAMETER_LIST_LENGTH_ERROR);
  const changes: TargetPortGroupChange[] = [];
  for (let at = STPG_HEADER_BYTES; at < listBytes; at += STPG_DESCRIPTOR_BYTES) {
    const state = aluaStateFromCode(list[at]! & STPG_STATE_MASK);
    if (state === undefined || state === "transitioning") {
      return unit.fail(command, INVALID_FIELD_IN_PARAMETER_LIST, { field: { inCdb: false, byte: at, bit: 3 } });
    }
    const id = paramU16(list, at + 2);
    if (!alua.hasGroup(id)) return unit.fail(command, INVALID_FIELD_IN_PARAMETER_LIST, { field: { inCdb: false, byte: at + 2 } });
    changes.push({ id, state });
  }
  return applyChanges(unit, command, alua, changes);
}

async function applyChanges(unit: LogicalUnit, command: ScsiCommand, alua: UnitAlua, changes: readonly TargetPortGroupChange[]): Promise<void> {
  try {
    await alua.setStates(changes);
  } catch (error) {
    unit.failFromBackstore(command, error);
  }
}

const hasAlua = (unit: LogicalUnit): boolean => unit.alua !== undefined;

export const TARGET_PORT_GROUP_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: MAINTENANCE_IN,
    serviceAction: MI_REPORT_TARGET_PORT_GROUPS,
    name: "REPORT TARGET PORT GROUPS",
    usage: [MAINTENANCE_IN, PARAMETER_DATA_FORMAT_MASK | MI_REPORT_TARGET_PORT_GROUPS, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CONTROL_NACA],
    execute: reportTargetPortGroups,
    supported: hasAlua,
  },
  {
    opcode: MAINTENANCE_OUT,
    serviceAction: MO_SET_TARGET_PORT_GROUPS,
    name: "SET TARGET PORT GROUPS",
    usage: [MAINTENANCE_OUT, MO_SET_TARGET_PORT_GROUPS, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CONTROL_NACA],
    execute: setTargetPortGroups,
    supported: hasAlua,
  },
];
