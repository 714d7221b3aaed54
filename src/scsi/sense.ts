// Sense data: every reason a command fails is a named (key, ASC, ASCQ) constant, turned into
// fixed-format (0x70) or descriptor-format (0x72) sense by one builder (SPC-4 4.5).
import { SAM_STAT_CHECK_CONDITION, type ScsiCommand } from "../ring/command.ts";

export const SENSE_KEY_NO_SENSE = 0x0;
export const SENSE_KEY_RECOVERED_ERROR = 0x1;
export const SENSE_KEY_NOT_READY = 0x2;
export const SENSE_KEY_MEDIUM_ERROR = 0x3;
export const SENSE_KEY_HARDWARE_ERROR = 0x4;
export const SENSE_KEY_ILLEGAL_REQUEST = 0x5;
export const SENSE_KEY_UNIT_ATTENTION = 0x6;
export const SENSE_KEY_DATA_PROTECT = 0x7;
export const SENSE_KEY_ABORTED_COMMAND = 0xb;
export const SENSE_KEY_MISCOMPARE = 0xe;

export interface SenseReason {
  readonly name: string;
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

function reason(name: string, key: number, asc: number, ascq: number): SenseReason {
  return Object.freeze({ name, key, asc, ascq });
}

export const NO_ADDITIONAL_SENSE = reason("NO ADDITIONAL SENSE INFORMATION", SENSE_KEY_NO_SENSE, 0x00, 0x00);
export const INVALID_COMMAND_OPERATION_CODE = reason("INVALID COMMAND OPERATION CODE", SENSE_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
export const LBA_OUT_OF_RANGE = reason("LOGICAL BLOCK ADDRESS OUT OF RANGE", SENSE_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
export const INVALID_FIELD_IN_CDB = reason("INVALID FIELD IN CDB", SENSE_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
export const INVALID_FIELD_IN_PARAMETER_LIST = reason("INVALID FIELD IN PARAMETER LIST", SENSE_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
export const PARAMETER_LIST_LENGTH_ERROR = reason("PARAMETER LIST LENGTH ERROR", SENSE_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
export const SAVING_PARAMETERS_NOT_SUPPORTED = reason("SAVING PARAMETERS NOT SUPPORTED", SENSE_KEY_ILLEGAL_REQUEST, 0x39, 0x00);
export const UNRECOVERED_READ_ERROR = reason("UNRECOVERED READ ERROR", SENSE_KEY_MEDIUM_ERROR, 0x11, 0x00);
export const WRITE_ERROR = reason("WRITE ERROR", SENSE_KEY_MEDIUM_ERROR, 0x0c, 0x00);
export const MISCOMPARE_DURING_VERIFY = reason("MISCOMPARE DURING VERIFY OPERATION", SENSE_KEY_MISCOMPARE, 0x1d, 0x00);
export const WRITE_PROTECTED = reason("WRITE PROTECTED", SENSE_KEY_DATA_PROTECT, 0x27, 0x00);
export const SPACE_ALLOCATION_FAILED_WRITE_PROTECT = reason(
  "SPACE ALLOCATION FAILED WRITE PROTECT",
  SENSE_KEY_DATA_PROTECT,
  0x27,
  0x07,
);
export const INTERNAL_TARGET_FAILURE = reason("INTERNAL TARGET FAILURE", SENSE_KEY_HARDWARE_ERROR, 0x44, 0x00);
export const LOGICAL_UNIT_COMMUNICATION_FAILURE = reason(
  "LOGICAL UNIT COMMUNICATION FAILURE",
  SENSE_KEY_HARDWARE_ERROR,
  0x08,
  0x00,
);
export const CAPACITY_DATA_HAS_CHANGED = reason("CAPACITY DATA HAS CHANGED", SENSE_KEY_UNIT_ATTENTION, 0x2a, 0x09);
export const MODE_PARAMETERS_CHANGED = reason("MODE PARAMETERS CHANGED", SENSE_KEY_UNIT_ATTENTION, 0x2a, 0x01);
export const POWER_ON_OR_RESET = reason("POWER ON, RESET, OR BUS DEVICE RESET OCCURRED", SENSE_KEY_UNIT_ATTENTION, 0x29, 0x00);
export const COMMAND_ABORTED = reason("COMMAND ABORTED", SENSE_KEY_ABORTED_COMMAND, 0x00, 0x00);

/** Where in the CDB or parameter list the offending field is (SPC-4 4.5.2.4.2). */
export interface FieldPointer {
  /** true: the field is in the CDB; false: in the parameter list (Data-Out). */
  inCdb: boolean;
  byte: number;
  /** Bit of the field's most significant bit, or undefined when the whole byte is meant. */
  bit?: number;
}

export interface SenseDetails {
  /** INFORMATION field: the failing LBA, or the miscompare offset. */
  information?: number;
  field?: FieldPointer;
}

export const FIXED_SENSE_LENGTH = 18;

/**
 * Writes sense for `reason` into `target` and returns its length. Descriptor format when
 * `descriptorFormat` (control mode page D_SENSE = 1), fixed format otherwise.
 */
export function buildSense(target: Uint8Array, reason: SenseReason, descriptorFormat: boolean, details: SenseDetails = {}): number {
  target.fill(0);
  const sks = details.field === undefined ? undefined : senseKeySpecific(details.field);
  if (!descriptorFormat) {
    target[0] = 0x70 | (details.information === undefined ? 0 : 0x80);
    target[2] = reason.key & 0x0f;
    if (details.information !== undefined) writeU32(target, 3, details.information);
    target[7] = FIXED_SENSE_LENGTH - 8;
    target[12] = reason.asc;
    target[13] = reason.ascq;
    if (sks !== undefined) target.set(sks, 15);
    return FIXED_SENSE_LENGTH;
  }
  target[0] = 0x72;
  target[1] = reason.key & 0x0f;
  target[2] = reason.asc;
  target[3] = reason.ascq;
  let length = 8;
  if (details.information !== undefined) {
    // Information descriptor (type 0x00): VALID bit, 8-byte INFORMATION.
    target[length] = 0x00;
    target[length + 1] = 0x0a;
    target[length + 2] = 0x80;
    writeU64(target, length + 4, details.information);
    length += 12;
  }
  if (sks !== undefined) {
    // Sense key specific descriptor (type 0x02).
    target[length] = 0x02;
    target[length + 1] = 0x06;
    target.set(sks, length + 4);
    length += 8;
  }
  target[7] = length - 8;
  return length;
}

/** Sets CHECK CONDITION with sense for `reason` on the command. */
export function checkCondition(command: ScsiCommand, reason: SenseReason, descriptorFormat: boolean, details?: SenseDetails): void {
  command.status = SAM_STAT_CHECK_CONDITION;
  command.senseLengthBytes = buildSense(command.sense, reason, descriptorFormat, details);
}

function senseKeySpecific(field: FieldPointer): Uint8Array {
  const bytes = new Uint8Array(3);
  // SKSV | C/D | BPV | bit pointer; then the field pointer (byte).
  bytes[0] = 0x80 | (field.inCdb ? 0x40 : 0) | (field.bit === undefined ? 0 : 0x08 | (field.bit & 0x7));
  bytes[1] = (field.byte >> 8) & 0xff;
  bytes[2] = field.byte & 0xff;
  return bytes;
}

function writeU32(target: Uint8Array, at: number, value: number): void {
  // Fixed sense has 4 INFORMATION bytes; an LBA beyond 2^32 does not fit and VALID stays set
  // with the low 32 bits, as the kernel's fixed-format builder does.
  const low = value % 0x1_0000_0000;
  target[at] = (low >>> 24) & 0xff;
  target[at + 1] = (low >>> 16) & 0xff;
  target[at + 2] = (low >>> 8) & 0xff;
  target[at + 3] = low & 0xff;
}

function writeU64(target: Uint8Array, at: number, value: number): void {
  writeU32(target, at, Math.floor(value / 0x1_0000_0000));
  writeU32(target, at + 4, value);
}
