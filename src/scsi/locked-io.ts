// Backstore access for the commands off the hot path (VERIFY, COMPARE AND WRITE, WRITE SAME,
// UNMAP, EXTENDED COPY): async, under the device's LBA range lock, in chunks of a bounded size.
import type { IoResult } from "../../backstores/types.ts";
import type { DataSegments } from "../ring/data-segments.ts";
import type { ScsiDevice } from "./device.ts";
import { IO_CHUNK_BYTES_MAX } from "./io-buffer.ts";

/** Runs `work` while holding [lba, lba + blocks) of the device's lock. */
export async function withRange<T>(
  device: ScsiDevice,
  lba: number,
  blocks: number,
  exclusive: boolean,
  work: () => Promise<T>,
): Promise<T> {
  const ticket = await device.rangeLock.acquire(lba, lba + blocks, exclusive);
  try {
    return await work();
  } finally {
    device.rangeLock.release(ticket);
  }
}

export async function settle(result: IoResult): Promise<void> {
  if (result !== undefined) await result;
}

export function readBlocks(device: ScsiDevice, lba: number, blocks: number, target: DataSegments, targetStartBytes = 0): Promise<void> {
  const blockSize = device.blockSizeBytes;
  return settle(device.backstore.read(lba * blockSize, blocks * blockSize, target, targetStartBytes));
}

export function writeBlocks(
  device: ScsiDevice,
  lba: number,
  blocks: number,
  source: DataSegments,
  sourceStartBytes: number,
  durable: boolean,
): Promise<void> {
  const blockSize = device.blockSizeBytes;
  return settle(device.backstore.write(lba * blockSize, blocks * blockSize, source, sourceStartBytes, durable));
}

/** Blocks per chunk for a device: a whole number of blocks, at most IO_CHUNK_BYTES_MAX bytes. */
export function chunkBlocks(device: ScsiDevice): number {
  return Math.max(1, Math.floor(IO_CHUNK_BYTES_MAX / device.blockSizeBytes));
}
