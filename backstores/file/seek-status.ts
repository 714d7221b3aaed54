// GET LBA STATUS from the file system: SEEK_DATA/SEEK_HOLE say where data and holes are, and
// extents are widened to whole SCSI blocks (a block holding any data counts as mapped).
import { ENXIO } from "../../src/libc/errno.ts";
import { SEEK_DATA, SEEK_HOLE } from "../../src/libc/libc.ts";
import type { LbaStatusExtent } from "../types.ts";
import type { StoreSyscalls } from "./syscalls.ts";

/** The extent of mapped or deallocated blocks that starts at `offsetBytes` (block-aligned). */
export function lbaStatusBySeek(
  syscalls: StoreSyscalls,
  fd: number,
  offsetBytes: number,
  sizeBytes: number,
  blockSizeBytes: number,
): LbaStatusExtent {
  const dataStart = syscalls.lseek(fd, offsetBytes, SEEK_DATA);
  if (dataStart === -ENXIO) return { mapped: false, lengthBytes: sizeBytes - offsetBytes }; // no data from here on
  if (dataStart < 0) return { mapped: true, lengthBytes: sizeBytes - offsetBytes }; // cannot tell: all mapped
  if (dataStart > offsetBytes) return wholeBlocks(offsetBytes, false, Math.min(dataStart, sizeBytes), sizeBytes, blockSizeBytes);
  const holeStart = syscalls.lseek(fd, offsetBytes, SEEK_HOLE);
  const endBytes = holeStart < 0 ? sizeBytes : Math.min(holeStart, sizeBytes);
  return wholeBlocks(offsetBytes, true, endBytes, sizeBytes, blockSizeBytes);
}

/** True when [startBytes, endBytes) holds no data at all. */
export function rangeIsHole(syscalls: StoreSyscalls, fd: number, startBytes: number, endBytes: number): boolean {
  const dataStart = syscalls.lseek(fd, startBytes, SEEK_DATA);
  return dataStart === -ENXIO || dataStart >= endBytes;
}

function wholeBlocks(offsetBytes: number, mapped: boolean, endBytes: number, sizeBytes: number, blockSizeBytes: number): LbaStatusExtent {
  const roundedEnd = mapped
    ? Math.min(Math.ceil(endBytes / blockSizeBytes) * blockSizeBytes, sizeBytes)
    : Math.floor(endBytes / blockSizeBytes) * blockSizeBytes;
  if (roundedEnd > offsetBytes) return { mapped, lengthBytes: roundedEnd - offsetBytes };
  // The hole ends inside the first block, which holds data after all.
  return { mapped: true, lengthBytes: Math.min(blockSizeBytes, sizeBytes - offsetBytes) };
}
