// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS / OPERATING PARAMETERS (SPC-4 6.4, 6.22): the
// copy manager of target_core_xcopy.c, for devices served by this process. Source and
// destination are named by identification target descriptors (E4h) carrying the NAA designator
// of VPD 0x83; data moves block to block (segment descriptor 02h). The parameter list is parsed
// and every descriptor checked before the first block moves (extended-copy-parse.ts).
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { writeMustBeDurable } from "./block-checks.ts";
import { cdbU32, putU16, putU32 } from "./cdb.ts";
import {
  COPY_DESCRIPTOR_LIST_BYTES_MAX,
  COPY_HEADER_BYTES,
  COPY_SEGMENT_BYTES_MAX,
  COPY_SEGMENT_DESCRIPTORS_MAX,
  COPY_TARGET_DESCRIPTORS_MAX,
  SEGMENT_BLOCK_TO_BLOCK,
  TARGET_IDENTIFICATION,
  parseCopyParameters,
  type CopySegment,
} from "./extended-copy-parse.ts";
import { IoBuffer } from "./io-buffer.ts";
import { chunkBlocks, readBlocks, withRange, writeBlocks } from "./locked-io.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_COMMAND_IU, PARAMETER_LIST_LENGTH_ERROR } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const EXTENDED_COPY = 0x83;
export const EXTENDED_COPY_LID1 = 0x00;
export const RECEIVE_COPY_RESULTS = 0x84;
export const RCR_OPERATING_PARAMETERS = 0x03;

function extendedCopy(device: LogicalUnit, command: ScsiCommand): IoResult {
  const listBytes = cdbU32(command.cdb, 10);
  // SPC-4 6.4.1: a zero-length parameter list copies nothing and is not an error.
  if (listBytes === 0) return;
  if (listBytes < COPY_HEADER_BYTES) return device.fail(command, PARAMETER_LIST_LENGTH_ERROR);
  // Anything past the longest valid list is never looked at (inline data is not supported).
  const list = device.parameterList(command, Math.min(listBytes, COPY_HEADER_BYTES + COPY_DESCRIPTOR_LIST_BYTES_MAX));
  if (list === undefined) return device.fail(command, INVALID_FIELD_IN_COMMAND_IU);
  const parsed = parseCopyParameters(device, list, listBytes);
  if (!Array.isArray(parsed)) return device.fail(command, parsed.reason, parsed.details);
  if (parsed.length === 0) return;
  return copySegments(device, command, parsed);
}

async function copySegments(device: LogicalUnit, command: ScsiCommand, segments: CopySegment[]): Promise<void> {
  try {
    for (const segment of segments) await copySegment(segment);
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

/**
 * Chunk by chunk: read under the source's lock, write under the destination's, never both held
 * (two locks at once could deadlock against a COMPARE AND WRITE waiting on either). Within one
 * device, a destination above an overlapping source is copied from the end backwards, so the
 * result is that of a copy through a buffer of the whole segment (memmove). Either end may be a
 * proxy for a device on another thread, so "one device" is one NAA (parsing resolves each NAA
 * to one unit), not one object.
 */
async function copySegment(segment: CopySegment): Promise<void> {
  const { source, destination, sourceLba, destinationLba, blocks } = segment;
  const blockSize = source.blockSizeBytes;
  const perChunk = Math.min(blocks, chunkBlocks(source));
  const buffer = new IoBuffer(perChunk * blockSize);
  const backwards = source.naaKey === destination.naaKey && destinationLba > sourceLba && destinationLba < sourceLba + blocks;
  const durable = writeMustBeDurable(destination, false);
  const chunkCount = Math.ceil(blocks / perChunk);
  for (let step = 0; step < chunkCount; step += 1) {
    const chunk = backwards ? chunkCount - 1 - step : step;
    const offset = chunk * perChunk;
    const count = Math.min(perChunk, blocks - offset);
    const segments = buffer.prefix(count * blockSize);
    await withRange(source, sourceLba + offset, count, false, () => readBlocks(source, sourceLba + offset, count, segments));
    await withRange(destination, destinationLba + offset, count, false, () =>
      writeBlocks(destination, destinationLba + offset, count, segments, 0, durable),
    );
  }
}

/** RECEIVE COPY RESULTS, OPERATING PARAMETERS (SPC-4 6.22.4): the limits parseCopyParameters enforces. */
const OPERATING_PARAMETERS_BYTES = 46;

function receiveCopyOperatingParameters(device: LogicalUnit, command: ScsiCommand): void {
  const data = device.scratch;
  data.fill(0, 0, OPERATING_PARAMETERS_BYTES);
  putU32(data, 0, OPERATING_PARAMETERS_BYTES - 4); // AVAILABLE DATA
  data[4] = 0x01; // SNLID: copies need no list identifier (results are not held)
  putU16(data, 8, COPY_TARGET_DESCRIPTORS_MAX);
  putU16(data, 10, COPY_SEGMENT_DESCRIPTORS_MAX);
  putU32(data, 12, COPY_DESCRIPTOR_LIST_BYTES_MAX);
  putU32(data, 16, COPY_SEGMENT_BYTES_MAX);
  // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0.
  putU16(data, 34, 1); // TOTAL CONCURRENT COPIES, as the kernel reports
  data[36] = 1; // MAXIMUM CONCURRENT COPIES
  data[37] = Math.log2(device.blockSizeBytes); // DATA SEGMENT GRANULARITY (log2 bytes)
  data[38] = data[37]; // INLINE DATA GRANULARITY
  data[39] = data[37]; // HELD DATA GRANULARITY
  data[43] = 2; // IMPLEMENTED DESCRIPTOR LIST LENGTH
  data[44] = SEGMENT_BLOCK_TO_BLOCK;
  data[45] = TARGET_IDENTIFICATION;
  device.replyScratch(command, OPERATING_PARAMETERS_BYTES, cdbU32(command.cdb, 10));
}

export const EXTENDED_COPY_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: EXTENDED_COPY,
    serviceAction: EXTENDED_COPY_LID1,
    name: "EXTENDED COPY(LID1)",
    usage: [EXTENDED_COPY, EXTENDED_COPY_LID1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, CONTROL_NACA],
    execute: extendedCopy,
    mediumAccess: true,
  },
  {
    opcode: RECEIVE_COPY_RESULTS,
    serviceAction: RCR_OPERATING_PARAMETERS,
    name: "RECEIVE COPY RESULTS(OPERATING PARAMETERS)",
    usage: [RECEIVE_COPY_RESULTS, RCR_OPERATING_PARAMETERS, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, CONTROL_NACA],
    execute: receiveCopyOperatingParameters,
  },
];
