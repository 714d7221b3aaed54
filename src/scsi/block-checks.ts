// Checks every block command makes before it touches the backstore, in the order SBC-3 implies:
// CDB fields first (protection, transfer length), then the addressed range, then the medium.
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU64Exact } from "./cdb.ts";
import type { CopyUnit, LogicalUnit } from "./logical-unit.ts";
import { INVALID_FIELD_IN_CDB, INVALID_FIELD_IN_COMMAND_IU, LBA_OUT_OF_RANGE, WRITE_PROTECTED } from "./sense.ts";

/** RDPROTECT/WRPROTECT/VRPROTECT live in byte 1, bits 7..5 (SBC-3 5.14 and others). */
const PROTECT_BYTE = 1;
const PROTECT_MASK = 0xe0;

/**
 * A protect field other than zero asks for protection information, which this unit does not
 * have (no PROTECT bit in INQUIRY): INVALID FIELD IN CDB, as sbc_check_prot() answers.
 */
export function checkNoProtection(device: LogicalUnit, command: ScsiCommand): boolean {
  if ((command.cdb[PROTECT_BYTE]! & PROTECT_MASK) === 0) return true;
  device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: PROTECT_BYTE, bit: 7 } });
  return false;
}

/**
 * SBC-3 6.5.3: a transfer longer than MAXIMUM TRANSFER LENGTH (VPD B0, hw_max_sectors) is
 * terminated with INVALID FIELD IN CDB; the pointer names the transfer length field.
 */
export function checkTransferLength(device: LogicalUnit, command: ScsiCommand, blocks: number, lengthFieldAt: number): boolean {
  if (blocks <= device.config.maxTransferBlocks) return true;
  device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: lengthFieldAt } });
  return false;
}

/**
 * LBA + blocks must stay within the capacity (SBC-3 4.5), overflow included; INFORMATION
 * carries the LBA — exactly, from the CDB, when it is too large to be a number.
 */
export function checkLbaRange(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, lbaFieldAt: number): boolean {
  const capacity = device.capacityBlocks;
  if (lba <= capacity && blocks <= capacity - lba) return true;
  const information = Number.isFinite(lba) ? lba : cdbU64Exact(command.cdb, lbaFieldAt);
  device.fail(command, LBA_OUT_OF_RANGE, { information });
  return false;
}

/** Writes to a read-only backstore: DATA PROTECT, WRITE PROTECTED (SBC-3 4.11). */
export function checkWritable(device: LogicalUnit, command: ScsiCommand): boolean {
  if (!device.backstore.capabilities.readOnly) return true;
  device.fail(command, WRITE_PROTECTED);
  return false;
}

/**
 * The Data-Out buffer must hold what the CDB describes. The kernel rejects a mismatched write
 * before it reaches us (target_cmd_size_check: INVALID FIELD IN COMMAND IU); the check stays so
 * a short buffer can never become a partial write.
 */
export function checkDataOut(device: LogicalUnit, command: ScsiCommand, lengthBytes: number): boolean {
  if (command.data.totalBytes >= lengthBytes) return true;
  device.fail(command, INVALID_FIELD_IN_COMMAND_IU);
  return false;
}

/** FUA, or a disabled write cache (WCE=0): the data is on stable storage before status. */
export function writeMustBeDurable(device: CopyUnit, forceUnitAccess: boolean): boolean {
  return forceUnitAccess || !device.writeCacheEnabled;
}
