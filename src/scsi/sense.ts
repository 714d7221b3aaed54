// Sense data: every reason a command fails is a named (key, ASC, ASCQ) constant, turned into
// fixed-format (0x70) or descriptor-format (0x72) sense by one builder (SPC-4 4.5). The builder
// writes straight into the target buffer: rejections are normal traffic and allocate nothing.
import { SAM_STAT_CHECK_CONDITION, type ScsiCommand } from "../ring/command.ts";

export const SENSE_KEY_NO_SENSE = 0x0;
export const SENSE_KEY_RECOVERED_ERROR = 0x1;
export const SENSE_KEY_NOT_READY = 0x2;
export const SENSE_KEY_MEDIUM_ERROR = 0x3;
export const SENSE_KEY_HARDWARE_ERROR = 0x4;
export const SENSE_KEY_ILLEGAL_REQUEST = 0x5;
export const SENSE_KEY_UNIT_ATTENTION = 0x6;
export const SENSE_KEY_DATA_PROTECT = 0x7;
export const SENSE_KEY_COPY_ABORTED = 0xa;
export const SENSE_KEY_ABORTED_COMMAND = 0xb;
export const SENSE_KEY_MISCOMPARE = 0xe;

export const RESPONSE_CODE_FIXED = 0x70;
export const RESPONSE_CODE_DESCRIPTOR = 0x72;

export interface SenseReason {
  readonly name: string;
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

const ALL_REASONS: SenseReason[] = [];

function reason(name: string, key: number, asc: number, ascq: number): SenseReason {
  const value = Object.freeze({ name, key, asc, ascq });
  ALL_REASONS.push(value);
  return value;
}

export const NO_ADDITIONAL_SENSE = reason("NO ADDITIONAL SENSE INFORMATION", SENSE_KEY_NO_SENSE, 0x00, 0x00);
export const NOT_READY_INITIALIZING_COMMAND_REQUIRED = reason(
  "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
  SENSE_KEY_NOT_READY,
  0x04,
  0x02,
);
/**
 * The store's medium cannot be reached for now (a storage cluster without quorum or an OSD down
 * past its timeout): the command was not done, and Linux's sd retries this ASC/ASCQ.
 */
export const NOT_READY_BECOMING_READY = reason("LOGICAL UNIT IS IN PROCESS OF BECOMING READY", SENSE_KEY_NOT_READY, 0x04, 0x01);
/**
 * ALUA (SPC-4 5.15.2): the target port group is changing state (ours is taking the medium's lock,
 * or another gateway holds it). Not done; initiators retry it, on this path or another.
 */
export const NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION = reason(
  "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
  SENSE_KEY_NOT_READY,
  0x04,
  0x0a,
);
/** SPC-4 5.15.2.4: a standby target port group refuses all but a few commands. */
export const NOT_READY_TARGET_PORT_STANDBY = reason(
  "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
  SENSE_KEY_NOT_READY,
  0x04,
  0x0b,
);
/** SPC-4 5.15.2.5: an unavailable target port group refuses all but even fewer commands. */
export const NOT_READY_TARGET_PORT_UNAVAILABLE = reason(
  "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE",
  SENSE_KEY_NOT_READY,
  0x04,
  0x0c,
);
export const INVALID_COMMAND_OPERATION_CODE = reason("INVALID COMMAND OPERATION CODE", SENSE_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
export const LBA_OUT_OF_RANGE = reason("LOGICAL BLOCK ADDRESS OUT OF RANGE", SENSE_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
export const INVALID_FIELD_IN_CDB = reason("INVALID FIELD IN CDB", SENSE_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
export const INVALID_FIELD_IN_PARAMETER_LIST = reason("INVALID FIELD IN PARAMETER LIST", SENSE_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
export const PARAMETER_LIST_LENGTH_ERROR = reason("PARAMETER LIST LENGTH ERROR", SENSE_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
export const SAVING_PARAMETERS_NOT_SUPPORTED = reason("SAVING PARAMETERS NOT SUPPORTED", SENSE_KEY_ILLEGAL_REQUEST, 0x39, 0x00);
/** The Data-Out buffer is shorter than the CDB says (the kernel's TCM_INVALID_FIELD_IN_COMMAND_IU). */
export const INVALID_FIELD_IN_COMMAND_IU = reason(
  "INVALID FIELD IN COMMAND INFORMATION UNIT",
  SENSE_KEY_ILLEGAL_REQUEST,
  0x0e,
  0x03,
);
export const TOO_MANY_TARGET_DESCRIPTORS = reason("TOO MANY TARGET DESCRIPTORS", SENSE_KEY_ILLEGAL_REQUEST, 0x26, 0x06);
export const UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE = reason(
  "UNSUPPORTED TARGET DESCRIPTOR TYPE CODE",
  SENSE_KEY_ILLEGAL_REQUEST,
  0x26,
  0x07,
);
export const TOO_MANY_SEGMENT_DESCRIPTORS = reason("TOO MANY SEGMENT DESCRIPTORS", SENSE_KEY_ILLEGAL_REQUEST, 0x26, 0x08);
export const UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE = reason(
  "UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE",
  SENSE_KEY_ILLEGAL_REQUEST,
  0x26,
  0x09,
);
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
/** SPC-4 5.15.2.7: this gateway's target port group changed state without being told to. */
export const ASYMMETRIC_ACCESS_STATE_CHANGED = reason("ASYMMETRIC ACCESS STATE CHANGED", SENSE_KEY_UNIT_ATTENTION, 0x2a, 0x06);
export const POWER_ON_OR_RESET = reason("POWER ON, RESET, OR BUS DEVICE RESET OCCURRED", SENSE_KEY_UNIT_ATTENTION, 0x29, 0x00);
export const COMMAND_ABORTED = reason("COMMAND ABORTED", SENSE_KEY_ABORTED_COMMAND, 0x00, 0x00);
export const COPY_TARGET_DEVICE_NOT_REACHABLE = reason("COPY TARGET DEVICE NOT REACHABLE", SENSE_KEY_COPY_ABORTED, 0x0d, 0x02);

/** Every named reason, for tests that check a reply's (key, ASC, ASCQ) is one we meant. */
export const SENSE_REASONS: readonly SenseReason[] = ALL_REASONS;

/** Where in the CDB or parameter list the offending field is (SPC-4 4.5.2.4.2). */
export interface FieldPointer {
  /** true: the field is in the CDB; false: in the parameter list (Data-Out). */
  inCdb: boolean;
  byte: number;
  /** Bit of the field's most significant bit, or undefined when the whole byte is meant. */
  bit?: number;
}

export interface SenseDetails {
  /** INFORMATION field: the failing LBA, or the miscompare offset (bigint above 2^53). */
  information?: number | bigint;
  field?: FieldPointer;
}

export const FIXED_SENSE_LENGTH = 18;
const INFORMATION_DESCRIPTOR_LENGTH = 12;
const SENSE_KEY_SPECIFIC_DESCRIPTOR_LENGTH = 8;
/** The longest sense we build: descriptor header + information + sense-key-specific. */
export const SENSE_LENGTH_MAX = 8 + INFORMATION_DESCRIPTOR_LENGTH + SENSE_KEY_SPECIFIC_DESCRIPTOR_LENGTH;

/**
 * Writes sense for `reason` into `target` (zeroing it first) and returns its length. Descriptor
 * format when `descriptorFormat` (control mode page D_SENSE = 1), fixed format otherwise.
 */
export function buildSense(target: Uint8Array, reason: SenseReason, descriptorFormat: boolean, details?: SenseDetails): number {
  target.fill(0);
  const information = details?.information;
  const field = details?.field;
  if (!descriptorFormat) {
    target[0] = RESPONSE_CODE_FIXED;
    target[2] = reason.key;
    // SPC-4 4.5.3: INFORMATION is 4 bytes here; a value that does not fit leaves VALID at zero
    // (an initiator that needs 64-bit LBAs selects descriptor format with D_SENSE).
    if (information !== undefined && fitsU32(information)) {
      target[0] |= 0x80;
      putU32(target, 3, Number(information));
    }
    target[7] = FIXED_SENSE_LENGTH - 8;
    target[12] = reason.asc;
    target[13] = reason.ascq;
    if (field !== undefined) putSenseKeySpecific(target, 15, field);
    return FIXED_SENSE_LENGTH;
  }
  target[0] = RESPONSE_CODE_DESCRIPTOR;
  target[1] = reason.key;
  target[2] = reason.asc;
  target[3] = reason.ascq;
  let length = 8;
  if (information !== undefined) {
    // Information descriptor (SPC-4 4.5.2.2): type 00h, VALID, 8-byte INFORMATION.
    target[length] = 0x00;
    target[length + 1] = 0x0a;
    target[length + 2] = 0x80;
    putU64(target, length + 4, information);
    length += INFORMATION_DESCRIPTOR_LENGTH;
  }
  if (field !== undefined) {
    // Sense key specific descriptor (SPC-4 4.5.2.3): type 02h.
    target[length] = 0x02;
    target[length + 1] = 0x06;
    putSenseKeySpecific(target, length + 4, field);
    length += SENSE_KEY_SPECIFIC_DESCRIPTOR_LENGTH;
  }
  target[7] = length - 8;
  return length;
}

/** Sets CHECK CONDITION with sense for `reason` on the command. */
export function checkCondition(command: ScsiCommand, reason: SenseReason, descriptorFormat: boolean, details?: SenseDetails): void {
  command.status = SAM_STAT_CHECK_CONDITION;
  command.senseLengthBytes = buildSense(command.sense, reason, descriptorFormat, details);
}

/** SKSV | C/D | BPV | bit pointer, then the 16-bit field pointer (SPC-4 table 48). */
function putSenseKeySpecific(target: Uint8Array, at: number, field: FieldPointer): void {
  target[at] = 0x80 | (field.inCdb ? 0x40 : 0) | (field.bit === undefined ? 0 : 0x08 | (field.bit & 0x7));
  target[at + 1] = (field.byte >> 8) & 0xff;
  target[at + 2] = field.byte & 0xff;
}

function fitsU32(value: number | bigint): boolean {
  return typeof value === "bigint" ? value <= 0xffff_ffffn : value <= 0xffff_ffff;
}

function putU32(target: Uint8Array, at: number, value: number): void {
  target[at] = (value >>> 24) & 0xff;
  target[at + 1] = (value >>> 16) & 0xff;
  target[at + 2] = (value >>> 8) & 0xff;
  target[at + 3] = value & 0xff;
}

function putU64(target: Uint8Array, at: number, value: number | bigint): void {
  if (typeof value === "bigint") {
    putU32(target, at, Number((value >> 32n) & 0xffff_ffffn));
    putU32(target, at + 4, Number(value & 0xffff_ffffn));
    return;
  }
  putU32(target, at, Math.floor(value / 0x1_0000_0000));
  putU32(target, at + 4, value % 0x1_0000_0000);
}
