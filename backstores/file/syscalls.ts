// The system calls the file and RAM stores make after open, behind one small seam so tests can
// inject EIO, ENOSPC and short transfers at chosen offsets (error injection in the style of a
// faulty disk) while production calls libc directly. Data-path calls return -errno like the
// raw libc wrappers; the rest throw SystemCallError, as every other libc wrapper does.
import * as libc from "../../src/libc/libc.ts";

export interface StoreSyscalls {
  /** preadv(2) over `count` iovecs in `iovecs`: bytes read, 0 at end of file, or -errno. */
  preadv(fd: number, iovecs: Uint32Array, count: number, offsetBytes: number): number;
  /** pwritev2(2) with RWF_* flags: bytes written or -errno. */
  pwritev(fd: number, iovecs: Uint32Array, count: number, offsetBytes: number, flags: number): number;
  fdatasync(fd: number, subject: string): void;
  fallocate(fd: number, mode: number, offsetBytes: number, lengthBytes: number, subject: string): void;
  ioctl(fd: number, request: number, argument: BigUint64Array, subject: string): void;
  /** lseek(2): the new offset or -errno (SEEK_DATA past the last data answers -ENXIO). */
  lseek(fd: number, offsetBytes: number, whence: number): number;
}

export const LIBC_SYSCALLS: StoreSyscalls = {
  preadv: libc.preadvRaw,
  pwritev: libc.pwritevRaw,
  fdatasync: libc.fdatasync,
  fallocate: libc.fallocate,
  ioctl: (fd, request, argument, subject) => {
    libc.ioctl(fd, request, argument, subject);
  },
  lseek: libc.lseekRaw,
};
