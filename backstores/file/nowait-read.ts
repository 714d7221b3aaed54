// preadv2(RWF_NOWAIT): a read that succeeds only if it needs no waiting — in practice, when the
// page cache holds the range. Tried inline first, it serves cached reads with one system call
// and no hand-over (no promise, no completion to reap); EAGAIN or a short count means a miss,
// which then goes to io_uring or the I/O threads. File systems without non-blocking reads
// answer EOPNOTSUPP once and are not asked again.
import { dlopen, FFIType, type Pointer } from "bun:ffi";
import { EAGAIN } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";

const lib = dlopen("libc.so.6", {
  preadv2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.i64, FFIType.i32], returns: FFIType.i64_fast },
});

/** RWF_NOWAIT (include/uapi/linux/fs.h). */
export const RWF_NOWAIT = 0x8;

/** Bytes read, or -errno (-EAGAIN: not without waiting). */
export function preadvNowait(fd: number, iovecs: Uint32Array, count: number, offsetBytes: number): number {
  const value = lib.symbols.preadv2(fd, iovecs as unknown as Pointer, count, offsetBytes, RWF_NOWAIT);
  const result = typeof value === "number" ? value : Number(value);
  if (result >= 0) return result;
  const errno = libc.errno();
  return errno === 0 ? -EAGAIN : -errno;
}
