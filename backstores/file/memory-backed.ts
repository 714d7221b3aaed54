// Whether a file lives in memory (tmpfs, ramfs): there a read or write is a copy that never
// waits for a device, so small transfers are cheapest done inline on the event loop's thread —
// handing them to another thread would cost more than the copy. fstatfs(2) says which file
// system holds the descriptor.
import { libc } from "../../src/libc/binding.ts";

/** sizeof(struct statfs) on x86_64; f_type is its first field (a long). */
const STATFS_BYTES = 120;
export const TMPFS_MAGIC = 0x0102_1994;
export const RAMFS_MAGIC = 0x8584_58f6;

export function isMemoryBacked(fd: number): boolean {
  const status = new BigInt64Array(STATFS_BYTES / 8);
  if (libc.fstatfs(fd, status) !== 0) return false;
  const type = Number(status[0]! & 0xffff_ffffn);
  return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
}
