// The one bun:ffi binding of libc: every module that calls libc takes its symbols from here
// (libc.ts for files, memory, epoll; net.ts for sockets; io-uring/syscalls.ts for syscall(2)).
// dlopen compiles a trampoline per symbol, once per thread that imports this module, which is
// what bun:ffi needs: a Worker gets its own binding and its own errno slot.
import { dlopen, FFIType, read as readMemory, type Pointer } from "bun:ffi";

const { i32, u32, i64, u64, ptr, i64_fast } = FFIType;

export const libc = dlopen("libc.so.6", {
  __errno_location: { args: [], returns: ptr },
  open: { args: [ptr, i32, u32], returns: i32 },
  close: { args: [i32], returns: i32 },
  mmap: { args: [ptr, u64, i32, i32, i32, i64], returns: ptr },
  munmap: { args: [ptr, u64], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64_fast },
  write: { args: [i32, ptr, u64], returns: i64_fast },
  pread: { args: [i32, ptr, u64, i64], returns: i64_fast },
  pwrite: { args: [i32, ptr, u64, i64], returns: i64_fast },
  preadv: { args: [i32, ptr, i32, i64], returns: i64_fast },
  pwritev: { args: [i32, ptr, i32, i64], returns: i64_fast },
  preadv2: { args: [i32, ptr, i32, i64, i32], returns: i64_fast },
  pwritev2: { args: [i32, ptr, i32, i64, i32], returns: i64_fast },
  fsync: { args: [i32], returns: i32 },
  fdatasync: { args: [i32], returns: i32 },
  fallocate: { args: [i32, i32, i64, i64], returns: i32 },
  ftruncate: { args: [i32, i64], returns: i32 },
  lseek: { args: [i32, i64, i32], returns: i64_fast },
  flock: { args: [i32, i32], returns: i32 },
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  fstat: { args: [i32, ptr], returns: i32 },
  eventfd: { args: [u32, i32], returns: i32 },
  timerfd_create: { args: [i32, i32], returns: i32 },
  timerfd_settime: { args: [i32, i32, ptr, ptr], returns: i32 },
  epoll_create1: { args: [i32], returns: i32 },
  epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
  epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
  pipe2: { args: [ptr, i32], returns: i32 },
  getpid: { args: [], returns: i32 },
  gettid: { args: [], returns: i32 },
  // The third argument is an integer or a pointer (F_SETOWN_EX): pass pointers as numbers.
  fcntl: { args: [i32, i32, i64], returns: i32 },
  fstatfs: { args: [i32, ptr], returns: i32 },
  // Sockets (net.ts): generic netlink and sd_notify.
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
  sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64_fast },
  recv: { args: [i32, ptr, u64, i32], returns: i64_fast },
  // syscall(2) for io_uring (io-uring/syscalls.ts): variadic, but x86_64's only moves registers,
  // so seven fixed integer arguments are safe.
  syscall: { args: [i64, i64, i64, i64, i64, i64, i64], returns: i64_fast },
}).symbols;

const errnoLocation = libc.__errno_location() as Pointer;

/** errno of this thread's last failed call. */
export function errno(): number {
  return readMemory.i32(errnoLocation, 0);
}
