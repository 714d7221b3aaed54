// Logical block provisioning (SBC-3 4.7): UNMAP (5.28), WRITE SAME (10)/(16) (5.43–5.44) and
// GET LBA STATUS (5.6). What they promise follows the backstore's capabilities: UNMAP exists only
// when the store can deallocate, and an all-zero WRITE SAME with UNMAP deallocates when the store
// reads deallocated blocks back as zeros (LBPRZ).
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { checkDataOut, checkLbaRange, checkNoProtection, checkWritable, writeMustBeDurable } from "./block-checks.ts";
import { cdbU16, cdbU32, cdbU64, cdbU64Exact, paramU16, paramU32, paramU64, putU32, putU64 } from "./cdb.ts";
import { IoBuffer } from "./io-buffer.ts";
import { UNMAP_BLOCKS_MAX, UNMAP_DESCRIPTORS_MAX, WRITE_SAME_BLOCKS_MAX } from "./limits.ts";
import { chunkBlocks, settle, withRange, writeBlocks } from "./locked-io.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  PARAMETER_LIST_LENGTH_ERROR,
} from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const UNMAP = 0x42;
export const WRITE_SAME_10 = 0x41;
export const WRITE_SAME_16 = 0x93;
export const SERVICE_ACTION_IN_16 = 0x9e;
export const SAI_GET_LBA_STATUS = 0x12;

const ANCHOR_BIT_UNMAP = 0x01;
const UNMAP_HEADER_BYTES = 8;
const UNMAP_DESCRIPTOR_BYTES = 16;
// WRITE SAME byte 1.
const ANCHOR_BIT = 0x10;
const UNMAP_BIT = 0x08;
const PBDATA_LBDATA_BITS = 0x06;
const NDOB_BIT = 0x01;
/** LBA status descriptors returned at most per GET LBA STATUS. */
const LBA_STATUS_DESCRIPTORS_MAX = 64;
const LBA_STATUS_HEADER_BYTES = 8;
const LBA_STATUS_DESCRIPTOR_BYTES = 16;
const PROVISIONING_MAPPED = 0x0;
const PROVISIONING_DEALLOCATED = 0x1;

/** SBC-3 5.28: validate the whole parameter list, then deallocate descriptor by descriptor. */
function unmap(device: LogicalUnit, command: ScsiCommand): IoResult {
  const cdb = command.cdb;
  // No anchored LBAs (ANC_SUP=0 in VPD B2), so ANCHOR=1 is a bad field.
  if ((cdb[1]! & ANCHOR_BIT_UNMAP) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 0 } });
  const listBytes = cdbU16(cdb, 7);
  if (listBytes === 0) return;
  if (listBytes < UNMAP_HEADER_BYTES) return device.fail(command, PARAMETER_LIST_LENGTH_ERROR);
  if (!checkWritable(device, command)) return;
  const list = device.parameterList(command, listBytes);
  if (list === undefined) return device.fail(command, INVALID_FIELD_IN_COMMAND_IU);
  // An incomplete last descriptor (length not a multiple of 16, or cut by the list) is ignored.
  const descriptorBytes = Math.min(paramU16(list, 2), listBytes - UNMAP_HEADER_BYTES);
  const count = Math.floor(descriptorBytes / UNMAP_DESCRIPTOR_BYTES);
  if (count > UNMAP_DESCRIPTORS_MAX) return device.fail(command, INVALID_FIELD_IN_PARAMETER_LIST, { field: { inCdb: false, byte: 2 } });
  const lbas: number[] = [];
  const lengths: number[] = [];
  let totalBlocks = 0;
  for (let index = 0; index < count; index += 1) {
    const at = UNMAP_HEADER_BYTES + index * UNMAP_DESCRIPTOR_BYTES;
    const lba = paramU64(list, at);
    const blocks = paramU32(list, at + 8);
    const capacity = device.capacityBlocks;
    if (lba > capacity || blocks > capacity - lba) {
      return device.fail(command, LBA_OUT_OF_RANGE, { information: Number.isFinite(lba) ? lba : cdbU64Exact(list, at) });
    }
    totalBlocks += blocks;
    // MAXIMUM UNMAP LBA COUNT bounds the command as a whole (SBC-3 6.5.3).
    if (totalBlocks > UNMAP_BLOCKS_MAX) {
      return device.fail(command, INVALID_FIELD_IN_PARAMETER_LIST, { field: { inCdb: false, byte: at + 8 } });
    }
    if (blocks === 0) continue;
    lbas.push(lba);
    lengths.push(blocks);
  }
  if (lbas.length === 0) return;
  return unmapRanges(device, command, lbas, lengths);
}

async function unmapRanges(device: LogicalUnit, command: ScsiCommand, lbas: number[], lengths: number[]): Promise<void> {
  const blockSize = device.blockSizeBytes;
  try {
    for (let index = 0; index < lbas.length; index += 1) {
      const lba = lbas[index]!;
      const blocks = lengths[index]!;
      await withRange(device, lba, blocks, false, () => settle(device.backstore.unmap(lba * blockSize, blocks * blockSize)));
    }
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

interface WriteSameLayout {
  readonly sixteen: boolean;
  readonly lbaOf: (cdb: Uint8Array) => number;
  readonly blocksOf: (cdb: Uint8Array) => number;
  readonly lengthAt: number;
}

const WRITE_SAME_LAYOUT_10: WriteSameLayout = {
  sixteen: false,
  lbaOf: (cdb) => cdbU32(cdb, 2),
  blocksOf: (cdb) => cdbU16(cdb, 7),
  lengthAt: 7,
};
const WRITE_SAME_LAYOUT_16: WriteSameLayout = {
  sixteen: true,
  lbaOf: (cdb) => cdbU64(cdb, 2),
  blocksOf: (cdb) => cdbU32(cdb, 10),
  lengthAt: 10,
};

function writeSame(layout: WriteSameLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    const flags = cdb[1]!;
    if (!checkNoProtection(device, command)) return;
    if ((flags & ANCHOR_BIT) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
    // PBDATA/LBDATA (obsolete in the 16-byte form) would ask for per-block address stamping.
    if ((flags & PBDATA_LBDATA_BITS) !== 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 2 } });
    const lba = layout.lbaOf(cdb);
    const blocks = layout.blocksOf(cdb);
    // WSNZ=1 (VPD B0): zero blocks is refused rather than meaning "to the end".
    if (blocks === 0 || blocks > WRITE_SAME_BLOCKS_MAX) {
      return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: layout.lengthAt } });
    }
    if (!checkLbaRange(device, command, lba, blocks, 2)) return;
    if (!checkWritable(device, command)) return;
    const noDataOut = layout.sixteen && (flags & NDOB_BIT) !== 0;
    const blockSize = device.blockSizeBytes;
    if (!noDataOut && !checkDataOut(device, command, blockSize)) return;
    const pattern = new Uint8Array(blockSize);
    if (!noDataOut) command.data.copyTo(pattern, 0);
    const durable = writeMustBeDurable(device, false);
    if (!pattern.every((byte) => byte === 0)) return writePattern(device, command, lba, blocks, pattern, durable);
    const capabilities = device.backstore.capabilities;
    const deallocate = (flags & UNMAP_BIT) !== 0 && capabilities.unmap && capabilities.unmapReadsZeroes;
    return writeZeroes(device, command, lba, blocks, deallocate, durable);
  };
}

async function writeZeroes(
  device: LogicalUnit,
  command: ScsiCommand,
  lba: number,
  blocks: number,
  deallocate: boolean,
  durable: boolean,
): Promise<void> {
  const blockSize = device.blockSizeBytes;
  try {
    await withRange(device, lba, blocks, false, () =>
      settle(device.backstore.writeZeroes(lba * blockSize, blocks * blockSize, deallocate, durable)),
    );
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

/** A non-zero pattern is written for real: one chunk of repeated blocks, written over and over. */
async function writePattern(
  device: LogicalUnit,
  command: ScsiCommand,
  lba: number,
  blocks: number,
  pattern: Uint8Array,
  durable: boolean,
): Promise<void> {
  const blockSize = device.blockSizeBytes;
  const perChunk = Math.min(blocks, chunkBlocks(device));
  const buffer = new IoBuffer(perChunk * blockSize);
  for (let at = 0; at < perChunk * blockSize; at += blockSize) buffer.bytes.set(pattern, at);
  try {
    await withRange(device, lba, blocks, false, async () => {
      for (let done = 0; done < blocks; done += perChunk) {
        const count = Math.min(perChunk, blocks - done);
        await writeBlocks(device, lba + done, count, buffer.prefix(count * blockSize), 0, durable);
      }
    });
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

/** SBC-3 5.6: extents from the starting LBA, mapped or deallocated, as the backstore knows them. */
function getLbaStatus(device: LogicalUnit, command: ScsiCommand): IoResult {
  const cdb = command.cdb;
  const lba = cdbU64(cdb, 2);
  if (lba >= device.capacityBlocks) {
    return device.fail(command, LBA_OUT_OF_RANGE, { information: Number.isFinite(lba) ? lba : cdbU64Exact(cdb, 2) });
  }
  return reportLbaStatus(device, command, lba, cdbU32(cdb, 10));
}

interface Extent {
  lba: number;
  blocks: number;
  mapped: boolean;
}

async function reportLbaStatus(device: LogicalUnit, command: ScsiCommand, startLba: number, allocationLengthBytes: number): Promise<void> {
  const blockSize = device.blockSizeBytes;
  const capacity = device.capacityBlocks;
  const wanted = Math.floor((allocationLengthBytes - LBA_STATUS_HEADER_BYTES) / LBA_STATUS_DESCRIPTOR_BYTES);
  const descriptorsMax = Math.max(1, Math.min(LBA_STATUS_DESCRIPTORS_MAX, wanted));
  const extents: Extent[] = [];
  try {
    for (let lba = startLba; lba < capacity && extents.length < descriptorsMax; ) {
      const status = device.backstore.capabilities.lbaStatus
        ? await device.backstore.lbaStatus(lba * blockSize)
        : { mapped: true, lengthBytes: (capacity - lba) * blockSize };
      // The count field is 32 bits; a longer extent continues in the next descriptor.
      const blocks = Math.min(Math.max(1, Math.floor(status.lengthBytes / blockSize)), capacity - lba, 0xffff_ffff);
      extents.push({ lba, blocks, mapped: status.mapped });
      lba += blocks;
    }
  } catch (error) {
    device.failFromBackstore(command, error);
    return;
  }
  // Built only now: the scratch buffer is shared, and other commands ran during the awaits.
  const data = device.scratch;
  const length = LBA_STATUS_HEADER_BYTES + extents.length * LBA_STATUS_DESCRIPTOR_BYTES;
  data.fill(0, 0, length);
  putU32(data, 0, length - 4);
  extents.forEach((extent, index) => {
    const at = LBA_STATUS_HEADER_BYTES + index * LBA_STATUS_DESCRIPTOR_BYTES;
    putU64(data, at, extent.lba);
    putU32(data, at + 8, extent.blocks);
    data[at + 12] = extent.mapped ? PROVISIONING_MAPPED : PROVISIONING_DEALLOCATED;
  });
  device.replyScratch(command, length, allocationLengthBytes);
}

export const PROVISIONING_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: UNMAP,
    name: "UNMAP",
    usage: [UNMAP, ANCHOR_BIT_UNMAP, 0, 0, 0, 0, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: unmap,
    mediumAccess: true,
    supported: (device) => device.backstore.capabilities.unmap,
  },
  {
    opcode: WRITE_SAME_10,
    name: "WRITE SAME(10)",
    usage: [WRITE_SAME_10, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: writeSame(WRITE_SAME_LAYOUT_10),
    mediumAccess: true,
  },
  {
    opcode: WRITE_SAME_16,
    name: "WRITE SAME(16)",
    usage: [WRITE_SAME_16, 0xff, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA],
    execute: writeSame(WRITE_SAME_LAYOUT_16),
    mediumAccess: true,
  },
  {
    opcode: SERVICE_ACTION_IN_16,
    serviceAction: SAI_GET_LBA_STATUS,
    name: "GET LBA STATUS",
    usage: [SERVICE_ACTION_IN_16, SAI_GET_LBA_STATUS, ...Array<number>(8).fill(0xff), 0xff, 0xff, 0xff, 0xff, 0x00, CONTROL_NACA],
    execute: getLbaStatus,
    mediumAccess: true,
  },
];
