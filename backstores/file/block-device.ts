// What the file store needs to know about a block device: its size, its logical sector size (the
// O_DIRECT alignment) and whether it can discard. ioctl numbers from include/uapi/linux/fs.h.
import { fstatSync, readFileSync } from "node:fs";
import * as libc from "../../src/libc/libc.ts";

/** _IOR(0x12, 114, size_t): the device size in bytes (u64). */
export const BLKGETSIZE64 = 0x8008_1272;
/** _IO(0x12, 104): the logical sector size (int). */
export const BLKSSZGET = 0x1268;
/** _IO(0x12, 119): discard {start, length} (u64[2]), bytes. */
export const BLKDISCARD = 0x1277;
/** _IO(0x12, 127): write zeros over {start, length} (u64[2]), never deallocating. */
export const BLKZEROOUT = 0x127f;

export function blockDeviceSizeBytes(fd: number, subject: string): number {
  const size = new BigUint64Array(1);
  libc.ioctl(fd, BLKGETSIZE64, size, subject);
  return Number(size[0]!);
}

export function logicalSectorBytes(fd: number, subject: string): number {
  const value = new BigUint64Array(1);
  libc.ioctl(fd, BLKSSZGET, value, subject);
  return Number(value[0]! & 0xffff_ffffn);
}

/**
 * Whether the device takes discards: queue/discard_max_bytes > 0 in sysfs. A partition has no
 * queue/ of its own; its disk's is one level up.
 */
export function blockDeviceDiscards(fd: number): boolean {
  const deviceNumber = fstatSync(fd, { bigint: true }).rdev;
  const major = ((deviceNumber >> 8n) & 0xfffn) | ((deviceNumber >> 32n) & ~0xfffn);
  const minor = (deviceNumber & 0xffn) | ((deviceNumber >> 12n) & ~0xffn);
  const device = `/sys/dev/block/${major}:${minor}`;
  for (const queue of [`${device}/queue`, `${device}/../queue`]) {
    try {
      return Number(readFileSync(`${queue}/discard_max_bytes`, "utf8").trim()) > 0;
    } catch {
      // Not this one; try the parent disk's queue.
    }
  }
  return false;
}
