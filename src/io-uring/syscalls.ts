// The three io_uring system calls, through glibc's syscall(2) (glibc has no wrappers for them;
// binding.ts says why binding the variadic syscall() with fixed arguments is safe). Pointers
// travel as numbers. Each call returns its result, or -errno (never throws): these run per batch
// on the data path.
import { errno, libc as sym } from "../libc/binding.ts";
import { EINTR } from "../libc/errno.ts";
import * as uapi from "./uapi.ts";

const PROT_READ_WRITE = 3;
const MAP_SHARED_POPULATE = 0x01 | 0x8000;

function result(value: number | bigint): number {
  const number = typeof value === "number" ? value : Number(value);
  return number < 0 ? -errno() : number;
}

/** io_uring_setup(entries, params): the ring's descriptor, or -errno. */
export function ioUringSetup(entries: number, paramsAddress: number): number {
  return result(sym.syscall(uapi.SYS_IO_URING_SETUP, entries, paramsAddress, 0, 0, 0, 0));
}

/**
 * io_uring_enter(fd, toSubmit, minComplete, flags): SQEs consumed, or -errno. EINTR is retried
 * only when nothing was asked to wait; a wait interrupted by a signal returns -EINTR.
 */
export function ioUringEnter(fd: number, toSubmit: number, minComplete: number, flags: number): number {
  for (;;) {
    const value = result(sym.syscall(uapi.SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0));
    if (value !== -EINTR || minComplete > 0) return value;
  }
}

/** io_uring_register(fd, opcode, arg, count): 0 or a count, or -errno. */
export function ioUringRegister(fd: number, opcode: number, argumentAddress: number, count: number): number {
  return result(sym.syscall(uapi.SYS_IO_URING_REGISTER, fd, opcode, argumentAddress, count, 0, 0));
}

/**
 * Maps `lengthBytes` of an io_uring descriptor at one of the IORING_OFF_* offsets, populated so
 * the first completions take no page faults. Returns the address, or -errno.
 */
export function mmapRingRegion(fd: number, lengthBytes: number, offsetBytes: number): number {
  const address = sym.mmap(null, lengthBytes, PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, offsetBytes);
  // MAP_FAILED ((void *)-1) comes back as a BigInt, NULL as null.
  if (typeof address !== "number" || address === 0) return -errno();
  return address;
}
