// Which commands a target port group lets through in each asymmetric access state (SPC-4
// 5.15.2), as tables like the kernel's core_alua_state_standby() and its siblings, and which
// commands change the medium and so take its lock first. ScsiDevice and alua.ts apply them.
import type { AluaAccessState } from "./logical-unit.ts";
import {
  NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION,
  NOT_READY_TARGET_PORT_STANDBY,
  NOT_READY_TARGET_PORT_UNAVAILABLE,
  type SenseReason,
} from "./sense.ts";

/** A command a state lets through: an opcode, or one service action of a service-action opcode. */
interface AllowedCommand {
  readonly opcode: number;
  readonly serviceAction?: number;
  readonly name: string;
}

const INQUIRY: AllowedCommand = { opcode: 0x12, name: "INQUIRY" };
const REPORT_LUNS: AllowedCommand = { opcode: 0xa0, name: "REPORT LUNS" };
const REQUEST_SENSE: AllowedCommand = { opcode: 0x03, name: "REQUEST SENSE" };
const READ_BUFFER: AllowedCommand = { opcode: 0x3c, name: "READ BUFFER" };
const WRITE_BUFFER: AllowedCommand = { opcode: 0x3b, name: "WRITE BUFFER" };
const REPORT_TARGET_PORT_GROUPS: AllowedCommand = { opcode: 0xa3, serviceAction: 0x0a, name: "REPORT TARGET PORT GROUPS" };
const SET_TARGET_PORT_GROUPS: AllowedCommand = { opcode: 0xa4, serviceAction: 0x0a, name: "SET TARGET PORT GROUPS" };

/**
 * SPC-4 5.15.2.4.4 as core_alua_state_standby() reads it: a standby port answers what a path
 * checker and a management client need, and touches no data. Of SERVICE ACTION IN(16) only READ
 * CAPACITY(16), of MAINTENANCE IN only REPORT TARGET PORT GROUPS.
 */
export const STANDBY_ALLOWS: readonly AllowedCommand[] = [
  INQUIRY,
  { opcode: 0x4c, name: "LOG SELECT" },
  { opcode: 0x4d, name: "LOG SENSE" },
  { opcode: 0x15, name: "MODE SELECT(6)" },
  { opcode: 0x1a, name: "MODE SENSE(6)" },
  { opcode: 0x55, name: "MODE SELECT(10)" },
  { opcode: 0x5a, name: "MODE SENSE(10)" },
  REPORT_LUNS,
  { opcode: 0x1c, name: "RECEIVE DIAGNOSTIC RESULTS" },
  { opcode: 0x1d, name: "SEND DIAGNOSTIC" },
  { opcode: 0x9e, serviceAction: 0x10, name: "READ CAPACITY(16)" },
  REPORT_TARGET_PORT_GROUPS,
  SET_TARGET_PORT_GROUPS,
  REQUEST_SENSE,
  { opcode: 0x5e, name: "PERSISTENT RESERVE IN" },
  { opcode: 0x5f, name: "PERSISTENT RESERVE OUT" },
  READ_BUFFER,
  WRITE_BUFFER,
];

/** SPC-4 5.15.2.4.5, core_alua_state_unavailable(): fewer still — no mode or log pages. */
export const UNAVAILABLE_ALLOWS: readonly AllowedCommand[] = [
  INQUIRY,
  REPORT_LUNS,
  REPORT_TARGET_PORT_GROUPS,
  SET_TARGET_PORT_GROUPS,
  REQUEST_SENSE,
  READ_BUFFER,
  WRITE_BUFFER,
];

/**
 * SPC-4 5.15.2.6, core_alua_state_transition(): while the group changes state it cannot take a
 * further SET TARGET PORT GROUPS either.
 */
export const TRANSITIONING_ALLOWS: readonly AllowedCommand[] = [
  INQUIRY,
  REPORT_LUNS,
  REPORT_TARGET_PORT_GROUPS,
  REQUEST_SENSE,
  READ_BUFFER,
  WRITE_BUFFER,
];

/**
 * The commands that change the medium: only these take the medium's lock on a gateway that does
 * not hold it (docs/ha.md). Reads, and every path probe (TEST UNIT READY, INQUIRY, RTPG), run
 * without it — an active/non-optimized port executes I/O (SPC-4 5.15.2.4.3), and a new path's
 * partition scan must not wait for a lock another gateway holds; probing that moved the lock made
 * tcmu-runner's gateways ping-pong (tcmu-runner#341).
 */
export const WRITES_TAKING_LOCK: readonly AllowedCommand[] = [
  { opcode: 0x0a, name: "WRITE(6)" },
  { opcode: 0x2a, name: "WRITE(10)" },
  { opcode: 0xaa, name: "WRITE(12)" },
  { opcode: 0x8a, name: "WRITE(16)" },
  { opcode: 0x2e, name: "WRITE AND VERIFY(10)" },
  { opcode: 0xae, name: "WRITE AND VERIFY(12)" },
  { opcode: 0x8e, name: "WRITE AND VERIFY(16)" },
  { opcode: 0x41, name: "WRITE SAME(10)" },
  { opcode: 0x93, name: "WRITE SAME(16)" },
  { opcode: 0x42, name: "UNMAP" },
  { opcode: 0x89, name: "COMPARE AND WRITE" },
  { opcode: 0x83, name: "EXTENDED COPY" },
];

/** Opcodes whose byte 1 carries a service action among the lists above (table.ts has them all). */
const SERVICE_ACTION_OPCODES: ReadonlySet<number> = new Set([0x9e, 0xa3, 0xa4]);

/** A list as a set of keys: the opcode, or 0x10000 | opcode << 8 | service action. */
function keysOf(list: readonly AllowedCommand[]): ReadonlySet<number> {
  return new Set(list.map((entry) => (entry.serviceAction === undefined ? entry.opcode : 0x1_0000 | (entry.opcode << 8) | entry.serviceAction)));
}

function keyOfCdb(cdb: Uint8Array): number {
  const opcode = cdb[0]!;
  return SERVICE_ACTION_OPCODES.has(opcode) ? 0x1_0000 | (opcode << 8) | (cdb[1]! & 0x1f) : opcode;
}

const STANDBY_KEYS = keysOf(STANDBY_ALLOWS);
const UNAVAILABLE_KEYS = keysOf(UNAVAILABLE_ALLOWS);
const TRANSITIONING_KEYS = keysOf(TRANSITIONING_ALLOWS);
export const WRITE_OPCODES: ReadonlySet<number> = new Set(WRITES_TAKING_LOCK.map((entry) => entry.opcode));

/** The sense a command gets from a group in `state`, or undefined when the state lets it run. */
export function accessRefusal(state: AluaAccessState, cdb: Uint8Array): SenseReason | undefined {
  switch (state) {
    case "active-optimized":
    case "active-non-optimized":
      return undefined;
    case "standby":
      return STANDBY_KEYS.has(keyOfCdb(cdb)) ? undefined : NOT_READY_TARGET_PORT_STANDBY;
    case "unavailable":
      return UNAVAILABLE_KEYS.has(keyOfCdb(cdb)) ? undefined : NOT_READY_TARGET_PORT_UNAVAILABLE;
    case "transitioning":
      return TRANSITIONING_KEYS.has(keyOfCdb(cdb)) ? undefined : NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION;
    default:
      return assertNever(state);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected ALUA state ${String(value)}`);
}
