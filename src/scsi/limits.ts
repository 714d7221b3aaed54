// The unit's limits, reported in the Block Limits VPD page (SBC-3 6.5.3) and enforced by the
// commands they name: one place, so what we advertise is what we do.
import type { LogicalUnit } from "./logical-unit.ts";

/** MAXIMUM UNMAP LBA COUNT: blocks one UNMAP may deallocate, summed over its descriptors. */
export const UNMAP_BLOCKS_MAX = 0x40_0000;
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
 * the whole transfer must fit hw_max_sectors like any other.
 */
export function compareAndWriteBlocksMax(device: LogicalUnit): number {
  return Math.max(1, Math.min(COMPARE_AND_WRITE_FIELD_MAX, Math.floor(device.config.maxTransferBlocks / 2)));
}

/** OPTIMAL TRANSFER LENGTH GRANULARITY: one physical block. */
export function optimalGranularityBlocks(device: LogicalUnit): number {
  return 2 ** (device.config.physicalBlockExponent ?? 0);
}
