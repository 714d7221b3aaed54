// VERIFY (10)/(16) and WRITE AND VERIFY (10)/(16), SBC-3 5.33–5.34 and 5.41–5.42. The kernel
// answers VERIFY without reading anything and ignores BYTCHK; here the blocks are read (a read
// error is reported) and, with BYTCHK, compared: a difference is MISCOMPARE with its offset.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { checkDataOut, checkLbaRange, checkNoProtection, checkTransferLength, checkWritable } from "./block-checks.ts";
import { cdbU16, cdbU32, cdbU64 } from "./cdb.ts";
import { IoBuffer, firstDifference } from "./io-buffer.ts";
import { chunkBlocks, readBlocks, withRange, writeBlocks } from "./locked-io.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB, MISCOMPARE_DURING_VERIFY } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const VERIFY_10 = 0x2f;
export const VERIFY_16 = 0x8f;
export const WRITE_AND_VERIFY_10 = 0x2e;
export const WRITE_AND_VERIFY_16 = 0x8e;

/** BYTCHK, byte 1 bits 2..1 (SBC-3 table 62): what the Data-Out buffer holds. */
const BYTCHK_NONE = 0;
const BYTCHK_ALL_BLOCKS = 1;
const BYTCHK_ONE_BLOCK = 3;

interface VerifyLayout {
  readonly lbaOf: (cdb: Uint8Array) => number;
  readonly blocksOf: (cdb: Uint8Array) => number;
  readonly lengthAt: number;
}

const LAYOUT_10: VerifyLayout = { lbaOf: (cdb) => cdbU32(cdb, 2), blocksOf: (cdb) => cdbU16(cdb, 7), lengthAt: 7 };
const LAYOUT_16: VerifyLayout = { lbaOf: (cdb) => cdbU64(cdb, 2), blocksOf: (cdb) => cdbU32(cdb, 10), lengthAt: 10 };
const LBA_AT = 2;

function byteCheckOf(cdb: Uint8Array): number {
  return (cdb[1]! >> 1) & 0x03;
}

function verify(layout: VerifyLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (!checkNoProtection(device, command)) return;
    const byteCheck = byteCheckOf(cdb);
    if (byteCheck === 2) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 2 } });
    const lba = layout.lbaOf(cdb);
    const blocks = layout.blocksOf(cdb);
    if (!checkTransferLength(device, command, blocks, layout.lengthAt)) return;
    if (!checkLbaRange(device, command, lba, blocks, LBA_AT)) return;
    // A VERIFICATION LENGTH of zero verifies nothing and is not an error (SBC-3 5.33).
    if (blocks === 0) return;
    const dataOutBlocks = byteCheck === BYTCHK_NONE ? 0 : byteCheck === BYTCHK_ONE_BLOCK ? 1 : blocks;
    if (!checkDataOut(device, command, dataOutBlocks * device.blockSizeBytes)) return;
    return verifyBlocks(device, command, lba, blocks, byteCheck);
  };
}

/** Reads the range in chunks and compares each with Data-Out as BYTCHK says. */
async function verifyBlocks(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, byteCheck: number): Promise<void> {
  const blockSize = device.blockSizeBytes;
  const perChunk = Math.min(blocks, chunkBlocks(device));
  const medium = new IoBuffer(perChunk * blockSize);
  const expected = byteCheck === BYTCHK_NONE ? undefined : new Uint8Array(perChunk * blockSize);
  if (byteCheck === BYTCHK_ONE_BLOCK) {
    // The one Data-Out block is compared with every block of the range.
    command.data.copyTo(expected!.subarray(0, blockSize));
    for (let at = blockSize; at < expected!.length; at += blockSize) expected!.copyWithin(at, 0, blockSize);
  }
  try {
    for (let done = 0; done < blocks; done += perChunk) {
      const count = Math.min(perChunk, blocks - done);
      const lengthBytes = count * blockSize;
      await withRange(device, lba + done, count, false, () => readBlocks(device, lba + done, count, medium.prefix(lengthBytes)));
      if (expected === undefined) continue;
      if (byteCheck === BYTCHK_ALL_BLOCKS) command.data.copyTo(expected.subarray(0, lengthBytes), done * blockSize);
      const difference = firstDifference(medium.bytes.subarray(0, lengthBytes), expected.subarray(0, lengthBytes));
      if (difference < 0) continue;
      // SBC-3 5.33: INFORMATION is the offset in the Data-Out buffer of the first byte that
      // differed — within the single block for BYTCHK 11b.
      const offset = byteCheck === BYTCHK_ONE_BLOCK ? difference % blockSize : done * blockSize + difference;
      device.fail(command, MISCOMPARE_DURING_VERIFY, { information: offset });
      return;
    }
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

function writeAndVerify(layout: VerifyLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (!checkNoProtection(device, command)) return;
    // SBC-4 widened BYTCHK to two bits; for WRITE AND VERIFY only 00b and 01b are defined.
    const byteCheck = byteCheckOf(cdb);
    if (byteCheck > BYTCHK_ALL_BLOCKS) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 2 } });
    const lba = layout.lbaOf(cdb);
    const blocks = layout.blocksOf(cdb);
    if (!checkTransferLength(device, command, blocks, layout.lengthAt)) return;
    if (!checkLbaRange(device, command, lba, blocks, LBA_AT)) return;
    if (!checkWritable(device, command)) return;
    if (blocks === 0) return;
    if (!checkDataOut(device, command, blocks * device.blockSizeBytes)) return;
    return writeThenVerify(device, command, lba, blocks, byteCheck);
  };
}

/**
 * The write goes to stable storage (verifying the medium means reading what is really there),
 * then the range is read back; with BYTCHK it is compared with what was sent.
 */
async function writeThenVerify(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, byteCheck: number): Promise<void> {
  const blockSize = device.blockSizeBytes;
  const perChunk = Math.min(blocks, chunkBlocks(device));
  const medium = new IoBuffer(perChunk * blockSize);
  const sent = new Uint8Array(perChunk * blockSize);
  try {
    await withRange(device, lba, blocks, false, async () => {
      await writeBlocks(device, lba, blocks, command.data, 0, true);
      for (let done = 0; done < blocks; done += perChunk) {
        const count = Math.min(perChunk, blocks - done);
        const lengthBytes = count * blockSize;
        await readBlocks(device, lba + done, count, medium.prefix(lengthBytes));
        if (byteCheck === BYTCHK_NONE) continue;
        command.data.copyTo(sent.subarray(0, lengthBytes), done * blockSize);
        const difference = firstDifference(medium.bytes.subarray(0, lengthBytes), sent.subarray(0, lengthBytes));
        if (difference < 0) continue;
        device.fail(command, MISCOMPARE_DURING_VERIFY, { information: done * blockSize + difference });
        return;
      }
    });
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

/** Byte 1 usage: VRPROTECT/WRPROTECT, DPO, BYTCHK. */
const FLAGS_USAGE = 0xf6;

export const VERIFY_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: VERIFY_10,
    name: "VERIFY(10)",
    usage: [VERIFY_10, FLAGS_USAGE, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: verify(LAYOUT_10),
    mediumAccess: true,
  },
  {
    opcode: VERIFY_16,
    name: "VERIFY(16)",
    usage: [VERIFY_16, FLAGS_USAGE, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA],
    execute: verify(LAYOUT_16),
    mediumAccess: true,
  },
  {
    opcode: WRITE_AND_VERIFY_10,
    name: "WRITE AND VERIFY(10)",
    usage: [WRITE_AND_VERIFY_10, FLAGS_USAGE, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: writeAndVerify(LAYOUT_10),
    mediumAccess: true,
  },
  {
    opcode: WRITE_AND_VERIFY_16,
    name: "WRITE AND VERIFY(16)",
    usage: [WRITE_AND_VERIFY_16, FLAGS_USAGE, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA],
    execute: writeAndVerify(LAYOUT_16),
    mediumAccess: true,
  },
];
