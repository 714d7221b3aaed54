// libc through bun:ffi (the binding is binding.ts). Every wrapper throws a SystemCallError
// naming the call and errno on failure, so callers never see -1.
import { ptr, type Pointer } from "bun:ffi";
import { errno, libc as sym } from "./binding.ts";
import { EAGAIN, EINTR, SystemCallError } from "./errno.ts";

export { errno };

// open(2) flags and friends (x86_64 asm-generic values).
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const O_DIRECT = 0o40000;
export const O_CLOEXEC = 0o2000000;
/** Signal the descriptor's owner (F_SETOWN_EX) with SIGIO when it becomes readable. */
export const O_ASYNC = 0o20000;

export const F_GETFL = 3;
export const F_SETFL = 4;
/** fcntl(2) with struct f_owner_ex { int type; pid_t pid; }. */
export const F_SETOWN_EX = 15;
export const F_OWNER_TID = 0;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

export const SEEK_SET = 0;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

export const RWF_DSYNC = 0x2;
/** Fail with EAGAIN rather than wait (for a read: unless the page cache holds the range). */
export const RWF_NOWAIT = 0x8;

export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

export const EPOLLIN = 0x1;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
/** Edge-triggered: one event per wake-up of the file's wait queue, whether or not it was read. */
export const EPOLLET = 0x8000_0000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CLOEXEC = 0o2000000;

/** i64_fast results are numbers up to 2^53, which every size and offset here is. */
function ssize(value: number | bigint): number {
  return typeof value === "number" ? value : Number(value);
}

function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`, "utf8");
}

function check(call: string, subject: string | undefined, result: number): number {
  if (result < 0) throw new SystemCallError(call, subject, errno());
  return result;
}

/** Runs a call again while it fails with EINTR (a signal landed during a blocking call). */
function retryInterrupted(call: () => number): number {
  for (;;) {
    const result = call();
    if (result >= 0 || errno() !== EINTR) return result;
  }
}

export function open(path: string, flags: number, mode = 0o644): number {
  return check("open", path, retryInterrupted(() => sym.open(cString(path), flags | O_CLOEXEC, mode)));
}

export function close(fd: number): void {
  // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
  sym.close(fd);
}

/** Maps `lengthBytes` of `fd` shared and read-write; returns the address as a number. */
export function mmap(fd: number, lengthBytes: number, subject: string, flags = MAP_SHARED): number {
  const address = sym.mmap(null, lengthBytes, PROT_READ | PROT_WRITE, flags, fd, 0);
  // MAP_FAILED is (void*)-1, which bun:ffi hands back as a BigInt rather than a number.
  if (typeof address !== "number" || address === 0) throw new SystemCallError("mmap", subject, errno());
  return address;
}

export function mmapAnonymous(lengthBytes: number): number {
  return mmap(-1, lengthBytes, "anonymous", MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE);
}

export function munmap(address: number, lengthBytes: number): void {
  check("munmap", undefined, sym.munmap(address as Pointer, lengthBytes));
}

type Memory = NodeJS.TypedArray | ArrayBuffer | DataView | number;

export function read(fd: number, target: Memory, lengthBytes: number, subject?: string): number {
  return check("read", subject, retryInterrupted(() => ssize(sym.read(fd, target as Pointer, lengthBytes))));
}

/** A read that reports EAGAIN as -1 instead of throwing, for non-blocking descriptors. */
export function readNonBlocking(fd: number, target: Memory, lengthBytes: number, subject?: string): number {
  const result = retryInterrupted(() => ssize(sym.read(fd, target as Pointer, lengthBytes)));
  if (result < 0 && errno() === EAGAIN) return -1;
  return check("read", subject, result);
}

export function write(fd: number, source: Memory, lengthBytes: number, subject?: string): number {
  return check("write", subject, retryInterrupted(() => ssize(sym.write(fd, source as Pointer, lengthBytes))));
}

export function pread(fd: number, target: Memory, lengthBytes: number, offsetBytes: number, subject?: string): number {
  return check("pread", subject, retryInterrupted(() => ssize(sym.pread(fd, target as Pointer, lengthBytes, offsetBytes))));
}

export function pwrite(fd: number, source: Memory, lengthBytes: number, offsetBytes: number, subject?: string): number {
  return check("pwrite", subject, retryInterrupted(() => ssize(sym.pwrite(fd, source as Pointer, lengthBytes, offsetBytes))));
}

/**
 * preadv over an array of `struct iovec` (u64 base, u64 length pairs); with flags (RWF_NOWAIT)
 * preadv2. Returns -errno instead of throwing.
 */
export function preadvRaw(fd: number, iovecs: Memory, count: number, offsetBytes: number, flags = 0): number {
  // Hot path: the EINTR loop is written out so no closure is made per command.
  for (;;) {
    const result =
      flags === 0 ? ssize(sym.preadv(fd, iovecs as Pointer, count, offsetBytes)) : ssize(sym.preadv2(fd, iovecs as Pointer, count, offsetBytes, flags));
    if (result >= 0) return result;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}

/** pwritev2 with flags (RWF_DSYNC); flags 0 behaves as pwritev. Returns -errno instead of throwing. */
export function pwritevRaw(fd: number, iovecs: Memory, count: number, offsetBytes: number, flags: number): number {
  for (;;) {
    const result =
      flags === 0 ? ssize(sym.pwritev(fd, iovecs as Pointer, count, offsetBytes)) : ssize(sym.pwritev2(fd, iovecs as Pointer, count, offsetBytes, flags));
    if (result >= 0) return result;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}

/** write(2) without a closure, for the doorbell; returns -errno instead of throwing. */
export function writeRaw(fd: number, source: Memory, lengthBytes: number): number {
  for (;;) {
    const result = ssize(sym.write(fd, source as Pointer, lengthBytes));
    if (result >= 0) return result;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}

export function fsync(fd: number, subject?: string): void {
  check("fsync", subject, retryInterrupted(() => sym.fsync(fd)));
}

export function fdatasync(fd: number, subject?: string): void {
  check("fdatasync", subject, retryInterrupted(() => sym.fdatasync(fd)));
}

export function fallocate(fd: number, mode: number, offsetBytes: number, lengthBytes: number, subject?: string): void {
  check("fallocate", subject, retryInterrupted(() => sym.fallocate(fd, mode, offsetBytes, lengthBytes)));
}

export function ftruncate(fd: number, lengthBytes: number, subject?: string): void {
  check("ftruncate", subject, retryInterrupted(() => sym.ftruncate(fd, lengthBytes)));
}

/** lseek; returns -errno instead of throwing (SEEK_DATA past the last extent answers ENXIO). */
export function lseekRaw(fd: number, offsetBytes: number, whence: number): number {
  const result = ssize(sym.lseek(fd, offsetBytes, whence));
  return result < 0 ? -errno() : result;
}

/** flock; returns false when LOCK_NB was given and another holder has the lock. */
export function flock(fd: number, operation: number, subject?: string): boolean {
  const result = retryInterrupted(() => sym.flock(fd, operation));
  if (result < 0 && errno() === EAGAIN) return false;
  check("flock", subject, result);
  return true;
}

export function ioctl(fd: number, request: number, argument: Memory, subject?: string): number {
  return check("ioctl", subject, retryInterrupted(() => sym.ioctl(fd, request, argument as Pointer)));
}

/** struct stat (x86_64): the fields this program uses. */
export interface FileStatus {
  device: bigint;
  inode: bigint;
  mode: number;
  sizeBytes: number;
  blocks512: number;
}

const S_IFMT = 0o170000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;

export function fstat(fd: number, subject?: string): FileStatus {
  const buffer = new BigUint64Array(18); // sizeof(struct stat) = 144 on x86_64
  check("fstat", subject, sym.fstat(fd, buffer));
  const view = new DataView(buffer.buffer);
  return {
    device: view.getBigUint64(0, true),
    inode: view.getBigUint64(8, true),
    mode: view.getUint32(24, true),
    sizeBytes: Number(view.getBigInt64(48, true)),
    blocks512: Number(view.getBigInt64(64, true)),
  };
}

export function isBlockDevice(status: FileStatus): boolean {
  return (status.mode & S_IFMT) === S_IFBLK;
}

export function eventfd(initialValue: number, flags: number): number {
  return check("eventfd", undefined, sym.eventfd(initialValue, flags | EFD_CLOEXEC));
}

const CLOCK_MONOTONIC = 1;
const TFD_CLOEXEC = 0o2000000;

/**
 * A timerfd that becomes readable every `intervalMs` (its u64 counter says how many periods
 * passed): periodic work a data-plane worker waits for in the same epoll as its devices.
 */
export function timerfdPeriodic(intervalMs: number): number {
  const fd = check("timerfd_create", undefined, sym.timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  try {
    timerfdSetPeriod(fd, intervalMs);
  } catch (error) {
    sym.close(fd);
    throw error;
  }
  return fd;
}

/** Makes a timerfd fire every `intervalMs` from now on (the next expiry one period away). */
export function timerfdSetPeriod(fd: number, intervalMs: number): void {
  // struct itimerspec: it_interval then it_value, each { tv_sec, tv_nsec } as i64.
  const spec = new BigInt64Array(4);
  const seconds = BigInt(Math.floor(intervalMs / 1000));
  const nanoseconds = BigInt(Math.round((intervalMs % 1000) * 1_000_000));
  spec[0] = seconds;
  spec[1] = nanoseconds;
  spec[2] = seconds;
  spec[3] = nanoseconds;
  check("timerfd_settime", undefined, sym.timerfd_settime(fd, 0, ptr(spec), null));
}

export function epollCreate(): number {
  return check("epoll_create1", undefined, sym.epoll_create1(EPOLL_CLOEXEC));
}

/** Registers `fd` for `events` (EPOLLIN by default); `token` comes back in the event's data field. */
export function epollAdd(epollFd: number, fd: number, token: number, events = EPOLLIN): void {
  // struct epoll_event is packed on x86_64: u32 events, u64 data (12 bytes).
  const event = new Uint8Array(12);
  const view = new DataView(event.buffer);
  view.setUint32(0, events >>> 0, true);
  view.setUint32(4, token, true);
  check("epoll_ctl", undefined, sym.epoll_ctl(epollFd, EPOLL_CTL_ADD, fd, event));
}

/** Waits for events; fills `events` (12 bytes each) and returns how many arrived. */
export function epollWait(epollFd: number, events: Uint8Array, timeoutMs: number): number {
  return check("epoll_wait", undefined, retryInterrupted(() => sym.epoll_wait(epollFd, events, events.byteLength / 12, timeoutMs)));
}

/** epoll_wait without a closure (the data plane's hot path): events, 0 on EINTR, or throws. */
export function epollWaitRaw(epollFd: number, events: Uint8Array, eventsMax: number, timeoutMs: number): number {
  const result = sym.epoll_wait(epollFd, events, eventsMax, timeoutMs);
  if (result >= 0) return result;
  const code = errno();
  if (code === EINTR) return 0;
  throw new SystemCallError("epoll_wait", undefined, code);
}

export function epollDelete(epollFd: number, fd: number): void {
  check("epoll_ctl", undefined, sym.epoll_ctl(epollFd, EPOLL_CTL_DEL, fd, new Uint8Array(12)));
}

/** A pipe: [read end, write end], close-on-exec. */
export function pipe(flags = 0): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", undefined, sym.pipe2(fds, flags | O_CLOEXEC));
  return [fds[0]!, fds[1]!];
}

export function getpid(): number {
  return sym.getpid();
}

/**
 * Has the kernel send SIGIO to the calling thread each time `fd` becomes readable (sockets,
 * pipes and character devices that implement fasync), or stops it. The owner is set before
 * O_ASYNC, so no signal goes to an owner not chosen yet.
 */
export function setSignalOnReadable(fd: number, on: boolean, subject?: string): void {
  if (on) {
    const owner = new Int32Array([F_OWNER_TID, sym.gettid()]);
    check("fcntl", subject, sym.fcntl(fd, F_SETOWN_EX, ptr(owner)));
  }
  const flags = check("fcntl", subject, sym.fcntl(fd, F_GETFL, 0));
  check("fcntl", subject, sym.fcntl(fd, F_SETFL, on ? flags | O_ASYNC : flags & ~O_ASYNC));
}
