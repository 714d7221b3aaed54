// errno numbers for x86_64 Linux (asm-generic/errno-base.h, errno.h): only those this program
// reports or branches on. Anything else is printed as "errno N".

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const EROFS = 30;
export const ERANGE = 34;
export const ENOSYS = 38;
export const EOPNOTSUPP = 95;
export const ENOTSUP = EOPNOTSUPP;
export const EDQUOT = 122;
export const EILSEQ = 84;
export const ENOTCONN = 107;
export const ESHUTDOWN = 108;
export const ETIMEDOUT = 110;

const ERRNO_NAMES: Record<number, string> = {
  [EPERM]: "EPERM",
  [ENOENT]: "ENOENT",
  [EINTR]: "EINTR",
  [EIO]: "EIO",
  [ENXIO]: "ENXIO",
  [EBADF]: "EBADF",
  [EAGAIN]: "EAGAIN",
  [ENOMEM]: "ENOMEM",
  [EACCES]: "EACCES",
  [EFAULT]: "EFAULT",
  [EBUSY]: "EBUSY",
  [EEXIST]: "EEXIST",
  [ENODEV]: "ENODEV",
  [ENOTDIR]: "ENOTDIR",
  [EISDIR]: "EISDIR",
  [EINVAL]: "EINVAL",
  [EFBIG]: "EFBIG",
  [ENOSPC]: "ENOSPC",
  [ESPIPE]: "ESPIPE",
  [EROFS]: "EROFS",
  [ERANGE]: "ERANGE",
  [ENOSYS]: "ENOSYS",
  [EOPNOTSUPP]: "EOPNOTSUPP",
  [EDQUOT]: "EDQUOT",
  [ENOTCONN]: "ENOTCONN",
  [ESHUTDOWN]: "ESHUTDOWN",
  [ETIMEDOUT]: "ETIMEDOUT",
  [EILSEQ]: "EILSEQ",
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** A failed libc call: the message names the call, its subject and the errno (`open(/dev/uio3): EBUSY`). */
export class SystemCallError extends Error {
  readonly call: string;
  /** What the call was about (a path, a device); empty when nothing was named. */
  readonly subject: string;
  readonly errno: number;
  readonly code: string;

  constructor(call: string, subject: string | undefined, errno: number) {
    const code = errnoName(errno);
    super(subject === undefined ? `${call}: ${code}` : `${call}(${subject}): ${code}`);
    this.name = "SystemCallError";
    this.call = call;
    this.subject = subject ?? "";
    this.errno = errno;
    this.code = code;
  }
}
