// Backstore access for the commands off the hot path (VERIFY, COMPARE AND WRITE, WRITE SAME,
// UNMAP, EXTENDED COPY): async, under the unit's LBA range lock, in chunks of a bounded size.
// Everything goes through CopyUnit methods, so the same helpers move data between this unit and
// an EXTENDED COPY peer that may be a proxy for a device on another thread.
import type { IoResult } from "../../backstores/types.ts";
import type { DataSegments } from "../ring/data-segments.ts";
import { IO_CHUNK_BYTES_MAX } from "./io-buffer.ts";
import type { CopyUnit, RangeLock } from "./logical-unit.ts";

/** Runs `work` while holding [lba, lba + blocks) of the unit's lock. */
export function withRange<T>(unit: CopyUnit, lba: number, blocks: number, exclusive: boolean, work: () => Promise<T>): Promise<T> {
  return unit.withRange(lba, blocks, exclusive, work);
}

/** CopyUnit.withRange for a unit of this thread, over its own lock. */
export async function withLockedRange<T>(
  lock: RangeLock,
  lba: number,
  blocks: number,
  exclusive: boolean,
  work: () => Promise<T>,
): Promise<T> {
  const ticket = await lock.acquire(lba, lba + blocks, exclusive);
  try {
    return await work();
  } finally {
    lock.release(ticket);
  }
}

export async function settle(result: IoResult): Promise<void> {
  if (result !== undefined) await result;
}

export function readBlocks(unit: CopyUnit, lba: number, blocks: number, target: DataSegments, targetStartBytes = 0): Promise<void> {
  return settle(unit.readBlocks(lba, blocks, target, targetStartBytes));
}

export function writeBlocks(
  unit: CopyUnit,
  lba: number,
  blocks: number,
  source: DataSegments,
  sourceStartBytes: number,
  durable: boolean,
): Promise<void> {
  return settle(unit.writeBlocks(lba, blocks, source, sourceStartBytes, durable));
}

/** Blocks per chunk for a unit: a whole number of blocks, at most IO_CHUNK_BYTES_MAX bytes. */
export function chunkBlocks(unit: CopyUnit): number {
  return Math.max(1, Math.floor(IO_CHUNK_BYTES_MAX / unit.blockSizeBytes));
}
