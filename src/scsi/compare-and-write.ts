// COMPARE AND WRITE (SBC-3 5.2): read the blocks, compare them with the first half of Data-Out,
// and only if every byte matches write the second half — "as an uninterrupted series of
// actions". The range is held exclusively in the device's LBA lock from before the read until
// the write finished, so no other command (reads and ordinary writes take the lock shared, even
// while many run at once) can see or change those blocks in between. This is the primitive
// VMware ATS and cluster file systems build their locks on. A store that other gateways serve
// too (rbd) does the compare and the write in one operation of its medium instead, inside the
// same lock, so that the result also holds against them.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { checkDataOut, checkLbaRange, checkNoProtection, checkWritable, writeMustBeDurable } from "./block-checks.ts";
import { cdbU64 } from "./cdb.ts";
import { IoBuffer, firstDifference } from "./io-buffer.ts";
import { compareAndWriteBlocksMax } from "./limits.ts";
import { readBlocks, withRange, writeBlocks } from "./locked-io.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB, MISCOMPARE_DURING_VERIFY } from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const COMPARE_AND_WRITE = 0x89;

const LBA_AT = 2;
const NUMBER_OF_BLOCKS_AT = 13;
const FUA_BIT = 0x08;

function compareAndWrite(device: LogicalUnit, command: ScsiCommand): IoResult {
  const cdb = command.cdb;
  if (!checkNoProtection(device, command)) return;
  const lba = cdbU64(cdb, LBA_AT);
  const blocks = cdb[NUMBER_OF_BLOCKS_AT]!;
  // SBC-3 5.2: more blocks than MAXIMUM COMPARE AND WRITE LENGTH (VPD B0) is a bad CDB field.
  if (blocks > compareAndWriteBlocksMax(device)) {
    return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: NUMBER_OF_BLOCKS_AT } });
  }
  if (!checkLbaRange(device, command, lba, blocks, LBA_AT)) return;
  if (!checkWritable(device, command)) return;
  // Zero blocks: no read, no compare, no write, and not an error.
  if (blocks === 0) return;
  const halfBytes = blocks * device.blockSizeBytes;
  if (!checkDataOut(device, command, 2 * halfBytes)) return;
  const durable = writeMustBeDurable(device, (cdb[1]! & FUA_BIT) !== 0);
  return compareThenWrite(device, command, lba, blocks, durable);
}

async function compareThenWrite(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, durable: boolean): Promise<void> {
  const halfBytes = blocks * device.blockSizeBytes;
  const verifyData = new Uint8Array(halfBytes);
  command.data.copyTo(verifyData, 0);
  const store = device.backstore;
  const atomicBytes = store.capabilities.atomicCompareAndWriteBytes;
  const offsetBytes = lba * device.blockSizeBytes;
  const onMedium = store.compareAndWrite !== undefined && atomicBytes !== undefined && (offsetBytes % atomicBytes) + halfBytes <= atomicBytes;
  try {
    await withRange(device, lba, blocks, true, async () => {
      if (onMedium) {
        const writeData = new Uint8Array(halfBytes);
        command.data.copyTo(writeData, halfBytes);
        const difference = await store.compareAndWrite!(offsetBytes, verifyData, writeData, durable);
        if (difference >= 0) device.fail(command, MISCOMPARE_DURING_VERIFY, { information: difference });
        return;
      }
      const medium = new IoBuffer(halfBytes);
      await readBlocks(device, lba, blocks, medium.segments);
      const difference = firstDifference(medium.bytes.subarray(0, halfBytes), verifyData);
      if (difference >= 0) {
        // INFORMATION: offset of the first differing byte in the Data-Out buffer (SBC-3 5.2).
        device.fail(command, MISCOMPARE_DURING_VERIFY, { information: difference });
        return;
      }
      await writeBlocks(device, lba, blocks, command.data, halfBytes, durable);
    });
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

export const COMPARE_AND_WRITE_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: COMPARE_AND_WRITE,
    name: "COMPARE AND WRITE",
    // Byte 1: WRPROTECT, DPO, FUA; bytes 2-9 LBA; byte 13 NUMBER OF LOGICAL BLOCKS.
    usage: [COMPARE_AND_WRITE, 0xf8, ...Array<number>(8).fill(0xff), 0, 0, 0, 0xff, 0x00, CONTROL_NACA],
    execute: compareAndWrite,
    mediumAccess: true,
  },
];
