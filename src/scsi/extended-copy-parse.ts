// The EXTENDED COPY (LID1) parameter list (SPC-4 6.4.3): a 16-byte header, target descriptors,
// segment descriptors. Parsed whole into copy segments between resolved devices, or into the
// one sense reason (with the field pointer) that rejects it.
import { cdbU64Exact, paramU16, paramU32, paramU64 } from "./cdb.ts";
import { NAA_DESIGNATOR_BYTES, naaKey } from "./identity.ts";
import type { CopyUnit, LogicalUnit } from "./logical-unit.ts";
import {
  COPY_TARGET_DEVICE_NOT_REACHABLE,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  PARAMETER_LIST_LENGTH_ERROR,
  TOO_MANY_SEGMENT_DESCRIPTORS,
  TOO_MANY_TARGET_DESCRIPTORS,
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE,
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE,
  WRITE_PROTECTED,
  type SenseDetails,
  type SenseReason,
} from "./sense.ts";

export const COPY_HEADER_BYTES = 16;
/** Limits reported by RECEIVE COPY RESULTS (OPERATING PARAMETERS) and enforced here. */
export const COPY_TARGET_DESCRIPTORS_MAX = 8;
export const COPY_SEGMENT_DESCRIPTORS_MAX = 8;
export const COPY_DESCRIPTOR_LIST_BYTES_MAX = 1024;
/** Bytes one segment may move; with the segment count, bounds a command near the kernel's 256 MiB. */
export const COPY_SEGMENT_BYTES_MAX = 32 * 1024 * 1024;
/** Identification descriptor target descriptor (SPC-4 6.4.6.2). */
export const TARGET_IDENTIFICATION = 0xe4;
const TARGET_DESCRIPTOR_BYTES = 32;
/** Block device to block device segment descriptor (SPC-4 6.4.7.5). */
export const SEGMENT_BLOCK_TO_BLOCK = 0x02;
const SEGMENT_BLOCK_TO_BLOCK_LENGTH = 0x18;

export interface CopySegment {
  source: CopyUnit;
  destination: CopyUnit;
  sourceLba: number;
  destinationLba: number;
  blocks: number;
}

export interface CopyRejection {
  reason: SenseReason;
  details?: SenseDetails;
}

function atParameter(reason: SenseReason, byte: number, bit?: number): CopyRejection {
  return { reason, details: { field: { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) } } };
}

/** A target descriptor: where it sits in the list and the NAA it names. */
interface TargetDescriptor {
  at: number;
  naaKey: string;
  diskBlockLength: number;
}

export function parseCopyParameters(device: LogicalUnit, list: Uint8Array, listBytes: number): CopySegment[] | CopyRejection {
  const targetListBytes = paramU16(list, 2);
  const segmentListBytes = paramU32(list, 8);
  const inlineDataBytes = paramU32(list, 12);
  if (targetListBytes + segmentListBytes > COPY_DESCRIPTOR_LIST_BYTES_MAX) return { reason: PARAMETER_LIST_LENGTH_ERROR };
  if (inlineDataBytes !== 0) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, 12);
  if (COPY_HEADER_BYTES + targetListBytes + segmentListBytes > listBytes) return { reason: PARAMETER_LIST_LENGTH_ERROR };
  if (targetListBytes % TARGET_DESCRIPTOR_BYTES !== 0) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, 2);
  const targetCount = targetListBytes / TARGET_DESCRIPTOR_BYTES;
  if (targetCount > COPY_TARGET_DESCRIPTORS_MAX) return atParameter(TOO_MANY_TARGET_DESCRIPTORS, 2);
  const targets: TargetDescriptor[] = [];
  for (let index = 0; index < targetCount; index += 1) {
    const parsed = parseTargetDescriptor(list, COPY_HEADER_BYTES + index * TARGET_DESCRIPTOR_BYTES);
    if ("reason" in parsed) return parsed;
    targets.push(parsed);
  }
  const segments: CopySegment[] = [];
  const segmentsEnd = COPY_HEADER_BYTES + targetListBytes + segmentListBytes;
  for (let at = COPY_HEADER_BYTES + targetListBytes; at < segmentsEnd; ) {
    if (segments.length === COPY_SEGMENT_DESCRIPTORS_MAX) return atParameter(TOO_MANY_SEGMENT_DESCRIPTORS, 8);
    if (segmentsEnd - at < 4) return { reason: PARAMETER_LIST_LENGTH_ERROR };
    if (list[at] !== SEGMENT_BLOCK_TO_BLOCK) return atParameter(UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, at);
    if (paramU16(list, at + 2) !== SEGMENT_BLOCK_TO_BLOCK_LENGTH) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 2);
    if (at + 4 + SEGMENT_BLOCK_TO_BLOCK_LENGTH > segmentsEnd) return { reason: PARAMETER_LIST_LENGTH_ERROR };
    const segment = parseBlockSegment(device, list, at, targets);
    if ("reason" in segment) return segment;
    if (segment.blocks > 0) segments.push(segment);
    at += 4 + SEGMENT_BLOCK_TO_BLOCK_LENGTH;
  }
  return segments;
}

/**
 * E4h descriptor: a block device (peripheral type 0, not the NUL device) named by a binary,
 * logical-unit-associated NAA designator of 16 bytes, NAA 6h — what VPD 0x83 reports and what
 * target_xcopy_parse_tiddesc_e4() accepts.
 */
function parseTargetDescriptor(list: Uint8Array, at: number): TargetDescriptor | CopyRejection {
  if (list[at] !== TARGET_IDENTIFICATION) return atParameter(UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, at);
  if ((list[at + 1]! & 0x20) !== 0) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 1, 5);
  if ((list[at + 1]! & 0x1f) !== 0) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 1, 4);
  if ((list[at + 4]! & 0x0f) !== 0x1) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 4, 3);
  if ((list[at + 5]! & 0x30) !== 0x00) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 5, 5);
  if ((list[at + 5]! & 0x0f) !== 0x3) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 5, 3);
  if (list[at + 7] !== NAA_DESIGNATOR_BYTES) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 7);
  if ((list[at + 8]! & 0xf0) !== 0x60) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 8, 7);
  return {
    at,
    naaKey: naaKey(list.subarray(at + 8, at + 8 + NAA_DESIGNATOR_BYTES)),
    // DEVICE TYPE SPECIFIC PARAMETERS for block devices: DISK BLOCK LENGTH, bytes 29-31.
    diskBlockLength: (list[at + 29]! << 16) | (list[at + 30]! << 8) | list[at + 31]!,
  };
}

function parseBlockSegment(device: LogicalUnit, list: Uint8Array, at: number, targets: TargetDescriptor[]): CopySegment | CopyRejection {
  const source = resolveTarget(device, targets, paramU16(list, at + 4), at + 4);
  if ("reason" in source) return source;
  const destination = resolveTarget(device, targets, paramU16(list, at + 6), at + 6);
  if ("reason" in destination) return destination;
  // Both ends in one block size: the segment's block count then means the same on each side,
  // whatever DC says.
  if (source.blockSizeBytes !== destination.blockSizeBytes) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 6);
  const blocks = paramU16(list, at + 10);
  if (blocks * source.blockSizeBytes > COPY_SEGMENT_BYTES_MAX) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, at + 10);
  const sourceLba = paramU64(list, at + 12);
  const destinationLba = paramU64(list, at + 20);
  const outOfRange = checkRange(source, sourceLba, blocks, list, at + 12) ?? checkRange(destination, destinationLba, blocks, list, at + 20);
  if (outOfRange !== undefined) return outOfRange;
  if (destination.writeProtected) return { reason: WRITE_PROTECTED };
  return { source, destination, sourceLba, destinationLba, blocks };
}

/** The unit a descriptor index names: this one, or another of this process (by NAA). */
function resolveTarget(device: LogicalUnit, targets: TargetDescriptor[], index: number, fieldAt: number): CopyUnit | CopyRejection {
  const target = targets[index];
  if (target === undefined) return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, fieldAt);
  // Like the kernel, the receiving device is matched first; others through the registry.
  const found = target.naaKey === device.naaKey ? device : device.registry.find(target.naaKey);
  if (found === undefined || found.closed || found.stopped) return { reason: COPY_TARGET_DEVICE_NOT_REACHABLE };
  if (target.diskBlockLength !== 0 && target.diskBlockLength !== found.blockSizeBytes) {
    return atParameter(INVALID_FIELD_IN_PARAMETER_LIST, target.at + 29);
  }
  return found;
}

function checkRange(unit: CopyUnit, lba: number, blocks: number, list: Uint8Array, lbaAt: number): CopyRejection | undefined {
  const capacity = unit.capacityBlocks;
  if (lba <= capacity && blocks <= capacity - lba) return undefined;
  return { reason: LBA_OUT_OF_RANGE, details: { information: Number.isFinite(lba) ? lba : cdbU64Exact(list, lbaAt) } };
}
