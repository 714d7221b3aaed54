// The unit's limits, reported in the Block Limits VPD page (SBC-3 6.5.3) and enforced by the
// commands they name: one place, so what we advertise is what we do.
import type { LogicalUnit } from "./logical-unit.ts";

/** MAXIMUM UNMAP LBA COUNT: blocks one UNMAP may deallocate, summed over its descriptors. */
export const UNMAP_BLOCKS_MAX = 0x10_0000;
/** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
export const UNMAP_DESCRIPTORS_MAX = 256;
/**
 * MAXIMUM WRITE SAME LENGTH: a WRITE SAME with a pattern writes every block before status, so
 * the length is bounded to keep it well inside the kernel's 30 s cmd_time_out on slow stores.
 */
export const WRITE_SAME_BLOCKS_MAX = 0x10_0000;
/** The field is one byte (SBC-3 5.2). */
const COMPARE_AND_WRITE_FIELD_MAX = 255;

/**
 * MAXIMUM COMPARE AND WRITE LENGTH: its Data-Out carries twice the blocks (verify + write), and
 * the whole transfer must fit hw_max_sectors like any other. A store that compares and writes
 * on its medium (rbd, atomic across gateways) takes no more than it can do in one operation.
 */
export function compareAndWriteBlocksMax(device: LogicalUnit): number {
  const fieldMax = Math.min(COMPARE_AND_WRITE_FIELD_MAX, Math.floor(device.config.maxTransferBlocks / 2));
  const atomicBytes = device.backstore.capabilities.atomicCompareAndWriteBytes;
  const storeMax = atomicBytes === undefined ? fieldMax : Math.floor(atomicBytes / device.blockSizeBytes);
  return Math.max(1, Math.min(fieldMax, storeMax));
}

/** VPD B0 holds transfer lengths in 32 bits. */
const TRANSFER_FIELD_MAX = 0xffff_ffff;

/**
 * MAXIMUM TRANSFER LENGTH of a unit behind a ring whose data area is `dataAreaBytes`: the kernel
 * passes any transfer that fits the data area (it checks nothing else for a user backstore), so
 * that is exactly what the unit accepts — whatever hw_max_sectors says.
 */
export function maxTransferBlocksFor(dataAreaBytes: number, blockSizeBytes: number): number {
  return Math.max(1, Math.min(TRANSFER_FIELD_MAX, Math.floor(dataAreaBytes / blockSizeBytes)));
}

/** OPTIMAL TRANSFER LENGTH: hw_max_sectors, never above the maximum. */
export function optimalTransferBlocks(device: LogicalUnit): number {
  const maximum = device.config.maxTransferBlocks;
  return Math.min(maximum, device.config.optimalTransferBlocks ?? maximum);
}

/** The field is two bytes (SBC-3 6.5.3). */
const GRANULARITY_FIELD_MAX = 0xffff;

/** OPTIMAL TRANSFER LENGTH GRANULARITY: what the store prefers (an RBD object), else one physical block. */
export function optimalGranularityBlocks(device: LogicalUnit): number {
  const physical = 2 ** (device.config.physicalBlockExponent ?? 0);
  const storeBytes = device.backstore.capabilities.optimalGranularityBytes;
  if (storeBytes === undefined) return physical;
  return Math.min(GRANULARITY_FIELD_MAX, Math.max(physical, Math.floor(storeBytes / device.blockSizeBytes)));
}
