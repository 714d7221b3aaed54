// Opening a raw image or block device: descriptors, the lock that keeps a second handler away,
// sizing against dev_size, and probes of what the file system really supports (so the
// capabilities VPD B2 and READ CAPACITY(16) report are true for this file, not in general).
import { fstatSync } from "node:fs";
import { EINVAL, ENOENT, ENXIO, SystemCallError } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { BackstoreOpenError } from "../types.ts";
import { blockDeviceDiscards, blockDeviceSizeBytes, logicalSectorBytes } from "./block-device.ts";
import { FileBackstore, type FileBackstoreOptions, type OpenedFile } from "./file-backstore.ts";
import { MEMORY_INLINE_BYTES_MAX, sharedFileIo, type FileIoMode } from "./file-io.ts";
import { isMemoryBacked } from "./memory-backed.ts";
import { LIBC_SYSCALLS, type StoreSyscalls } from "./syscalls.ts";

const FILE_TYPE_MASK = 0o170000;
/** flock(2) shared lock (libc.ts has only LOCK_EX/NB/UN). */
const LOCK_SH = 1;
const CREATED_IMAGE_MODE = 0o600;
/** O_DIRECT never needs less than a 512-byte sector. */
const SECTOR_BYTES = 512;

export interface FileBackstoreOpenOptions {
  /** dev_size: a shorter file is extended sparsely, a smaller block device is refused. */
  sizeBytes: number;
  blockSizeBytes: number;
  /** ;ro — open read-only; writes answer DATA PROTECT / WRITE PROTECTED. */
  readOnly?: boolean;
  /** ;direct — O_DIRECT for every transfer that meets the device's alignment. */
  direct?: boolean;
  /** ;sync — O_DSYNC: every write is durable before its status. */
  sync?: boolean;
  /** Tests inject faults here (they reach the synchronous path only: use io "sync"). */
  syscalls?: StoreSyscalls;
  /**
   * How data moves (file-io.ts): "auto" serves commands concurrently through io_uring or I/O
   * threads, as `serve` does; the default "sync" keeps every call synchronous.
   */
  io?: FileIoMode;
}

/**
 * Opens `path` (absolute) as a file store. A missing regular file is created (sparse) unless the
 * store is read-only or the path is under /dev, where a typo'd device name must not quietly
 * become a file in RAM. Throws BackstoreOpenError with a message that says what to change.
 */
export function openFileBackstore(path: string, options: FileBackstoreOpenOptions): FileBackstore {
  const readOnly = options.readOnly ?? false;
  const sync = options.sync ?? false;
  const syscalls = options.syscalls ?? LIBC_SYSCALLS;
  const flags = (readOnly ? libc.O_RDONLY : libc.O_RDWR) | (sync ? libc.O_DSYNC : 0);
  const fd = openOrCreate(path, flags, readOnly);
  let directFd = -1;
  try {
    const status = libc.fstat(fd, path);
    const blockDevice = libc.isBlockDevice(status);
    if (!blockDevice && (status.mode & FILE_TYPE_MASK) !== libc.S_IFREG) {
      throw new BackstoreOpenError(`${path} is neither a regular file nor a block device`);
    }
    // A device too small is refused before the lock, so the message says so even when another
    // handler holds it; a file is extended only under the lock.
    if (blockDevice) checkDeviceSize(fd, path, options.sizeBytes);
    lockImage(fd, path, readOnly);
    if (!blockDevice) extendFile(fd, path, options.sizeBytes, readOnly, status.sizeBytes);
    const allocationUnitBytes = blockDevice ? logicalSectorBytes(fd, path) : Math.max(SECTOR_BYTES, fstatSync(fd).blksize);
    if (options.direct === true) directFd = openDirect(path, flags);
    const file: OpenedFile = {
      path,
      fd,
      directFd,
      directAlignmentBytes: allocationUnitBytes,
      blockDevice,
      readOnly,
      sync,
      punchHole: !blockDevice && !readOnly && probePunchHole(fd, path, options.sizeBytes, allocationUnitBytes, syscalls),
      discard: blockDevice && blockDeviceDiscards(fd),
      seekData: !blockDevice && probeSeekData(fd, syscalls),
      allocationUnitBytes,
    };
    return new FileBackstore(file, { sizeBytes: options.sizeBytes, blockSizeBytes: options.blockSizeBytes, syscalls, ...ioPolicy(fd, blockDevice, options.io) });
  } catch (error) {
    if (directFd >= 0) libc.close(directFd);
    libc.close(fd);
    throw error;
  }
}

/**
 * Where each transfer runs. A file in memory (tmpfs): inline (file-io.ts says why). Elsewhere:
 * reads try the page cache inline (RWF_NOWAIT) and go async on a miss, buffered writes run
 * inline until they stall (stall-guard.ts), durable writes and flushes go async.
 */
function ioPolicy(fd: number, blockDevice: boolean, mode: FileIoMode | undefined): Partial<FileBackstoreOptions> {
  const asyncIo = sharedFileIo(mode ?? "sync");
  if (asyncIo === undefined) return {};
  if (!blockDevice && isMemoryBacked(fd)) return { asyncIo, inlineBytesMax: MEMORY_INLINE_BYTES_MAX, inlineDurable: true };
  // "io_uring" and "threads" (tests, measurements) send every read to the engine they name.
  return { asyncIo, inlineBytesMax: 0, inlineWrites: true, nowaitReads: mode === "auto" };
}

function openOrCreate(path: string, flags: number, readOnly: boolean): number {
  try {
    return libc.open(path, flags);
  } catch (error) {
    if (!(error instanceof SystemCallError) || error.errno !== ENOENT) throw openError(path, error);
  }
  if (readOnly) throw new BackstoreOpenError(`${path} does not exist (;ro never creates an image)`);
  if (path.startsWith("/dev/")) throw new BackstoreOpenError(`${path} does not exist (device nodes are never created)`);
  try {
    return libc.open(path, flags | libc.O_CREAT | libc.O_EXCL, CREATED_IMAGE_MODE);
  } catch (error) {
    throw openError(path, error);
  }
}

function openError(path: string, error: unknown): Error {
  if (!(error instanceof SystemCallError)) return error as Error;
  if (error.errno === ENOENT) return new BackstoreOpenError(`cannot create ${path}: its directory does not exist`);
  return new BackstoreOpenError(`cannot open ${path}: ${error.message}`);
}

/**
 * flock(2) on the image: exclusive for a writer, shared for readers, never waiting. It follows
 * the inode, so another path or symlink to the same image is caught too.
 */
function lockImage(fd: number, path: string, readOnly: boolean): void {
  const operation = (readOnly ? LOCK_SH : libc.LOCK_EX) | libc.LOCK_NB;
  if (!libc.flock(fd, operation, path)) {
    throw new BackstoreOpenError(`${path} is in use by another handler (flock): two handlers must never serve one image`);
  }
}

function checkDeviceSize(fd: number, path: string, sizeBytes: number): void {
  const deviceBytes = blockDeviceSizeBytes(fd, path);
  if (deviceBytes < sizeBytes) {
    throw new BackstoreOpenError(`block device ${path} holds ${deviceBytes} bytes, less than dev_size ${sizeBytes}: lower dev_size`);
  }
}

function extendFile(fd: number, path: string, sizeBytes: number, readOnly: boolean, fileSizeBytes: number): void {
  if (fileSizeBytes >= sizeBytes) return;
  if (readOnly) {
    throw new BackstoreOpenError(`${path} holds ${fileSizeBytes} bytes, less than dev_size ${sizeBytes}, and ;ro forbids extending it`);
  }
  libc.ftruncate(fd, sizeBytes, path); // sparse: no blocks are written
}

function openDirect(path: string, flags: number): number {
  try {
    return libc.open(path, flags | libc.O_DIRECT);
  } catch (error) {
    if (error instanceof SystemCallError && error.errno === EINVAL) {
      throw new BackstoreOpenError(`${path}: its file system refuses O_DIRECT (EINVAL); drop ;direct`);
    }
    throw openError(path, error);
  }
}

/**
 * Punches a hole past the end of the data, where there is nothing to lose: a file system
 * without hole punching answers EOPNOTSUPP, and then UNMAP is not offered.
 */
function probePunchHole(fd: number, path: string, sizeBytes: number, unitBytes: number, syscalls: StoreSyscalls): boolean {
  const endBytes = Math.max(libc.fstat(fd, path).sizeBytes, sizeBytes);
  const probeOffset = Math.ceil(endBytes / unitBytes) * unitBytes;
  try {
    syscalls.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, probeOffset, unitBytes, path);
    return true;
  } catch (error) {
    // EOPNOTSUPP mostly; any refusal means UNMAP would not deallocate here.
    if (!(error instanceof SystemCallError)) throw error;
    return false;
  }
}

function probeSeekData(fd: number, syscalls: StoreSyscalls): boolean {
  const result = syscalls.lseek(fd, 0, libc.SEEK_DATA);
  return result >= 0 || result === -ENXIO;
}
