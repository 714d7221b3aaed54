// A raw image file or block device. Data moves with preadv/pwritev straight between the file and
// the mapped data area (the kernel does the one copy) — concurrently through the process's
// AsyncFileIo (io_uring or I/O threads) when the store has one, so a slow read does not hold up
// the ring; inline on the event loop's thread for small transfers of a file in memory (tmpfs),
// where that is cheapest, and always for error recovery. Durable writes use RWF_DSYNC;
// UNMAP punches holes (files) or discards (block devices); zeroing uses ZERO_RANGE / BLKZEROOUT;
// GET LBA STATUS asks SEEK_DATA/SEEK_HOLE. Opening (locks, sizing, probes) is in open-file.ts.
import { EDQUOT, EINVAL, ENOSPC, ENOSYS, EOPNOTSUPP, EROFS, errnoName, SystemCallError } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { BackstoreError, type Backstore, type BackstoreCapabilities, type IoResult, type LbaStatusExtent } from "../types.ts";
import type { AsyncFileIo, SyncRedo } from "./async-file-io.ts";
import { StallGuard } from "./stall-guard.ts";
import { BLKDISCARD, BLKZEROOUT } from "./block-device.ts";
import { lbaStatusBySeek } from "./seek-status.ts";
import type { StoreSyscalls } from "./syscalls.ts";
import { Transfer } from "./transfer.ts";

/** Zeros are written from one mapped buffer this big, repeated in the iovec list. */
export const ZERO_BUFFER_BYTES = 64 * 1024;
/** Zero writes go out in pieces of at most this many bytes (1024 iovecs of the zero buffer). */
const ZERO_WRITE_PIECE_BYTES = 1024 * ZERO_BUFFER_BYTES;
const PUNCH_HOLE_MODE = libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE;

/** What open-file.ts found out about the file; the store trusts it. */
export interface OpenedFile {
  path: string;
  /** Buffered descriptor (O_DSYNC with ;sync), used for everything O_DIRECT cannot take. */
  fd: number;
  /** O_DIRECT descriptor of the same file with ;direct, else -1. */
  directFd: number;
  /** Address, length and offset multiple that O_DIRECT needs. */
  directAlignmentBytes: number;
  blockDevice: boolean;
  readOnly: boolean;
  /** Every write is durable already (;sync opened the file O_DSYNC). */
  sync: boolean;
  /** Regular files: FALLOC_FL_PUNCH_HOLE works on this file system. */
  punchHole: boolean;
  /** Block devices: the device takes discards. */
  discard: boolean;
  /** Regular files: SEEK_DATA/SEEK_HOLE work. */
  seekData: boolean;
  /** File system block or logical sector: the unit holes come in. */
  allocationUnitBytes: number;
}

export interface FileBackstoreOptions {
  sizeBytes: number;
  /** The SCSI block size: LBA status extents are whole blocks. */
  blockSizeBytes: number;
  syscalls: StoreSyscalls;
  /** Concurrent I/O; absent: every transfer is synchronous. */
  asyncIo?: AsyncFileIo;
  /**
   * Reads up to this many bytes stay synchronous even with asyncIo (small copies of a file in
   * memory). Buffered writes up to it, or of any size when `inlineWrites`, also stay inline
   * while they do not stall; durable writes and flushes go async unless `inlineDurable`.
   */
  inlineBytesMax?: number;
  /** Buffered writes of any size run inline while a StallGuard sees them only copying. */
  inlineWrites?: boolean;
  /** The file is in memory: durability costs nothing, flushes stay inline. */
  inlineDurable?: boolean;
  /** Reads try preadv2(RWF_NOWAIT) inline first (#readCached); misses go to asyncIo. */
  nowaitReads?: boolean;
}

export class FileBackstore implements Backstore {
  readonly kind = "file";
  readonly description: string;
  /** How data moves ("io_uring (256 entries)", "2 I/O threads (…)", "synchronous"): for the attach log. */
  readonly ioDescription: string;
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities;
  readonly #file: OpenedFile;
  readonly #blockSizeBytes: number;
  readonly #syscalls: StoreSyscalls;
  readonly #transfer: Transfer;
  readonly #zeroBuffer: number;
  /** Cleared when pwritev2(RWF_DSYNC) is refused: durable writes then end with fdatasync. */
  #dsyncFlagWorks = true;
  #punchHoleWorks: boolean;
  #zeroRangeWorks = true;
  #open = true;
  readonly #asyncIo: AsyncFileIo | undefined;
  readonly #inlineBytesMax: number;
  readonly #inlineDurable: boolean;
  readonly #inlineWriteBytesMax: number;
  #nowaitReads: boolean;
  readonly #writeStalls = new StallGuard();
  /** How the async path redoes a failed request synchronously (never allocated per request). */
  readonly #redo: SyncRedo = {
    redoRead: (offsetBytes, lengthBytes, target, targetStartBytes) => this.#readSync(offsetBytes, lengthBytes, target, targetStartBytes),
    redoWrite: (offsetBytes, lengthBytes, source, sourceStartBytes, durable) => this.#writeSync(offsetBytes, lengthBytes, source, sourceStartBytes, durable),
    redoFlush: () => this.#datasync(0),
  };

  constructor(file: OpenedFile, options: FileBackstoreOptions) {
    this.#file = file;
    this.sizeBytes = options.sizeBytes;
    this.#blockSizeBytes = options.blockSizeBytes;
    this.#syscalls = options.syscalls;
    this.#transfer = new Transfer(options.syscalls);
    this.#punchHoleWorks = file.punchHole;
    this.#zeroBuffer = libc.mmapAnonymous(ZERO_BUFFER_BYTES);
    this.#asyncIo = options.asyncIo;
    this.#inlineBytesMax = options.asyncIo === undefined ? Number.POSITIVE_INFINITY : (options.inlineBytesMax ?? 0);
    this.#inlineDurable = options.inlineDurable ?? false;
    this.#nowaitReads = (options.nowaitReads ?? false) && file.directFd < 0;
    this.#inlineWriteBytesMax = options.inlineWrites === true ? Number.POSITIVE_INFINITY : this.#inlineBytesMax;
    const flags = [file.readOnly ? ";ro" : "", file.directFd >= 0 ? ";direct" : "", file.sync ? ";sync" : ""].join("");
    this.description = `file ${file.path}${flags}`;
    this.ioDescription = options.asyncIo === undefined ? "synchronous" : options.asyncIo.engine.description;
    this.capabilities = {
      readOnly: file.readOnly,
      unmap: !file.readOnly && (file.blockDevice ? file.discard : file.punchHole),
      // A discarded device range may read back anything (discard_zeroes_data is gone); a hole
      // in a file always reads zeros.
      unmapReadsZeroes: !file.blockDevice,
      lbaStatus: !file.blockDevice && file.seekData,
      volatileCache: !file.sync,
      unmapGranularityBytes: file.allocationUnitBytes,
    };
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): IoResult {
    this.#checkOpen();
    const io = this.#asyncIo;
    if (io === undefined || lengthBytes <= this.#inlineBytesMax) return this.#readSync(offsetBytes, lengthBytes, target, targetStartBytes);
    if (this.#nowaitReads && this.#readCached(offsetBytes, lengthBytes, target, targetStartBytes)) return;
    const token = io.begin(target, targetStartBytes, lengthBytes);
    if (token === -1) return io.whenTokenFree().then(() => this.read(offsetBytes, lengthBytes, target, targetStartBytes));
    if (token === -2) return this.#readSync(offsetBytes, lengthBytes, target, targetStartBytes);
    return io.read(token, this.#redo, this.#asyncDescriptorFor(io, token, offsetBytes, lengthBytes), offsetBytes);
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): IoResult {
    this.#checkWritable(offsetBytes);
    const io = this.#asyncIo;
    if (io === undefined) return this.#writeSync(offsetBytes, lengthBytes, source, sourceStartBytes, durable);
    const inline = lengthBytes <= this.#inlineWriteBytesMax && (!durable || this.#inlineDurable) && this.#file.directFd < 0 && !this.#file.sync;
    if (inline && this.#writeStalls.allowsInline()) {
      if (!this.#writeStalls.sampled()) return this.#writeSync(offsetBytes, lengthBytes, source, sourceStartBytes, durable);
      const startedMs = performance.now();
      this.#writeSync(offsetBytes, lengthBytes, source, sourceStartBytes, durable);
      this.#writeStalls.record(lengthBytes, performance.now() - startedMs);
      return;
    }
    const token = io.begin(source, sourceStartBytes, lengthBytes);
    if (token === -1) return io.whenTokenFree().then(() => this.write(offsetBytes, lengthBytes, source, sourceStartBytes, durable));
    if (token === -2) return this.#writeSync(offsetBytes, lengthBytes, source, sourceStartBytes, durable);
    const flagged = durable && !this.#file.sync && this.#dsyncFlagWorks;
    const syncAfter = durable && !this.#file.sync && !this.#dsyncFlagWorks;
    const fd = this.#asyncDescriptorFor(io, token, offsetBytes, lengthBytes);
    return io.write(token, this.#redo, fd, offsetBytes, flagged ? libc.RWF_DSYNC : 0, durable, syncAfter);
  }

  flush(): IoResult {
    this.#checkOpen();
    if (this.#file.readOnly) return;
    const io = this.#asyncIo;
    if (io === undefined || this.#inlineDurable) return this.#datasync(0);
    return io.flush(this.#redo, this.#file.fd) ?? io.whenTokenFree().then(() => this.flush());
  }

  /**
   * One non-blocking read of the whole range: true when the page cache had all of it. A cached
   * read then costs one system call and no hand-over (no promise, no completion to reap);
   * EAGAIN or a short count is a miss. File systems without non-blocking reads answer
   * EOPNOTSUPP once and are not asked again.
   */
  #readCached(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): boolean {
    const transfer = this.#transfer;
    transfer.load(target, targetStartBytes, lengthBytes);
    const iovecs = transfer.iovecs;
    const result = libc.preadvRaw(this.#file.fd, iovecs.batchWords, iovecs.batchCount, offsetBytes, libc.RWF_NOWAIT);
    if (result === -EOPNOTSUPP) this.#nowaitReads = false;
    // A short count (part cached, or the end of a truncated file) goes the long way for all of it.
    return result === lengthBytes;
  }

  #readSync(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    const transfer = this.#transfer;
    transfer.load(target, targetStartBytes, lengthBytes);
    const fd = this.#descriptorFor(offsetBytes, lengthBytes);
    let done = transfer.read(fd, offsetBytes, lengthBytes);
    // O_DIRECT refused this alignment after all: the rest goes buffered.
    if (!done && transfer.errno === EINVAL && fd === this.#file.directFd) done = transfer.read(this.#file.fd, offsetBytes, lengthBytes);
    if (!done) throw this.#ioError("read", transfer.errno, offsetBytes + transfer.doneBytes);
    if (transfer.doneBytes < lengthBytes) {
      // End of file inside dev_size: someone truncated the image under us. What is not there
      // reads as zeros, as a hole would, rather than leaking stale data-area bytes.
      target.fill(0, targetStartBytes + transfer.doneBytes, lengthBytes - transfer.doneBytes);
    }
  }

  #writeSync(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): void {
    this.#transfer.load(source, sourceStartBytes, lengthBytes);
    this.#writeLoaded(offsetBytes, lengthBytes, this.#descriptorFor(offsetBytes, lengthBytes), durable);
  }

  unmap(offsetBytes: number, lengthBytes: number): void {
    this.#checkWritable(offsetBytes);
    if (this.#file.blockDevice) {
      // Without discard support UNMAP is a hint we may ignore (LBPRZ is 0 for devices).
      if (this.#file.discard) this.#rangeIoctl(BLKDISCARD, offsetBytes, lengthBytes);
      return;
    }
    if (!this.#punchHole(offsetBytes, lengthBytes)) this.#zeroRange(offsetBytes, lengthBytes);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, deallocate: boolean, durable: boolean): void {
    this.#checkWritable(offsetBytes);
    if (this.#file.blockDevice) {
      // On a block device PUNCH_HOLE means "zero, deallocating if the device can" (and is
      // refused where it cannot); BLKZEROOUT writes zeros and keeps the blocks allocated.
      const punched = deallocate && this.#tryFallocate(PUNCH_HOLE_MODE, offsetBytes, lengthBytes);
      if (!punched) this.#rangeIoctl(BLKZEROOUT, offsetBytes, lengthBytes);
    } else if (!deallocate || !this.#punchHole(offsetBytes, lengthBytes)) {
      this.#zeroRange(offsetBytes, lengthBytes);
    }
    // O_DSYNC covers write(2) only: fallocate and ioctl changes need an explicit fdatasync.
    if (durable || this.#file.sync) this.#datasync(offsetBytes);
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    this.#checkOpen();
    if (this.#file.blockDevice || !this.#file.seekData) return { mapped: true, lengthBytes: this.sizeBytes - offsetBytes };
    return lbaStatusBySeek(this.#syscalls, this.#file.fd, offsetBytes, this.sizeBytes, this.#blockSizeBytes);
  }

  /** Closes the descriptors (the lock goes with them); the image stays as it is. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    if (this.#file.directFd >= 0) libc.close(this.#file.directFd);
    libc.close(this.#file.fd);
    libc.munmap(this.#zeroBuffer, ZERO_BUFFER_BYTES);
  }

  /** #descriptorFor for a transfer loaded into an async token's iovec slot. */
  #asyncDescriptorFor(io: AsyncFileIo, token: number, offsetBytes: number, lengthBytes: number): number {
    const file = this.#file;
    if (file.directFd < 0) return file.fd;
    const alignment = file.directAlignmentBytes;
    const aligned = offsetBytes % alignment === 0 && lengthBytes % alignment === 0 && io.arena.isAligned(token, alignment);
    return aligned ? file.directFd : file.fd;
  }

  /** The O_DIRECT descriptor when this transfer meets its alignment, else the buffered one. */
  #descriptorFor(offsetBytes: number, lengthBytes: number): number {
    const file = this.#file;
    if (file.directFd < 0) return file.fd;
    const alignment = file.directAlignmentBytes;
    const aligned = offsetBytes % alignment === 0 && lengthBytes % alignment === 0 && this.#transfer.iovecs.isAligned(alignment);
    return aligned ? file.directFd : file.fd;
  }

  /** Writes the loaded transfer, falling back where O_DIRECT or RWF_DSYNC is refused. */
  #writeLoaded(offsetBytes: number, lengthBytes: number, startFd: number, durable: boolean): void {
    const transfer = this.#transfer;
    let fd = startFd;
    let flags = durable && !this.#file.sync && this.#dsyncFlagWorks ? libc.RWF_DSYNC : 0;
    while (!transfer.write(fd, offsetBytes, lengthBytes, flags)) {
      const errno = transfer.errno;
      if (errno === EINVAL && fd === this.#file.directFd) {
        fd = this.#file.fd;
      } else if (flags !== 0 && (errno === EOPNOTSUPP || errno === ENOSYS)) {
        this.#dsyncFlagWorks = false; // a kernel without RWF_DSYNC: fdatasync below instead
        flags = 0;
      } else {
        throw this.#ioError("write", errno, offsetBytes + transfer.doneBytes);
      }
    }
    if (durable && !this.#file.sync && flags === 0) this.#datasync(offsetBytes);
  }

  /**
   * Zeros a file range: ZERO_RANGE where the file system has it (ext4 and XFS keep the blocks
   * as unwritten extents, which SEEK_DATA may then report as holes), written zeros otherwise.
   */
  #zeroRange(offsetBytes: number, lengthBytes: number): void {
    const zeroRange = libc.FALLOC_FL_ZERO_RANGE | libc.FALLOC_FL_KEEP_SIZE;
    if (this.#zeroRangeWorks && this.#tryFallocate(zeroRange, offsetBytes, lengthBytes)) return;
    this.#zeroRangeWorks = false;
    for (let done = 0; done < lengthBytes; done += ZERO_WRITE_PIECE_BYTES) {
      const piece = Math.min(ZERO_WRITE_PIECE_BYTES, lengthBytes - done);
      this.#transfer.loadZeros(this.#zeroBuffer, ZERO_BUFFER_BYTES, piece);
      this.#writeLoaded(offsetBytes + done, piece, this.#file.fd, false);
    }
  }

  /** Punches a hole in the file; false where its file system cannot (remembered). */
  #punchHole(offsetBytes: number, lengthBytes: number): boolean {
    if (!this.#punchHoleWorks) return false;
    if (this.#tryFallocate(PUNCH_HOLE_MODE, offsetBytes, lengthBytes)) return true;
    this.#punchHoleWorks = false;
    return false;
  }

  /** fallocate(); false when this file system or device does not do `mode` (EOPNOTSUPP). */
  #tryFallocate(mode: number, offsetBytes: number, lengthBytes: number): boolean {
    try {
      this.#syscalls.fallocate(this.#file.fd, mode, offsetBytes, lengthBytes, this.#file.path);
      return true;
    } catch (error) {
      if (!(error instanceof SystemCallError)) throw error;
      if (error.errno === EOPNOTSUPP) return false;
      throw this.#ioError("write", error.errno, offsetBytes);
    }
  }

  #rangeIoctl(request: number, offsetBytes: number, lengthBytes: number): void {
    const range = new BigUint64Array([BigInt(offsetBytes), BigInt(lengthBytes)]);
    try {
      this.#syscalls.ioctl(this.#file.fd, request, range, this.#file.path);
    } catch (error) {
      if (!(error instanceof SystemCallError)) throw error;
      throw this.#ioError("write", error.errno, offsetBytes);
    }
  }

  #datasync(offsetBytes: number): void {
    try {
      this.#syscalls.fdatasync(this.#file.fd, this.#file.path);
    } catch (error) {
      if (!(error instanceof SystemCallError)) throw error;
      // Which block failed to reach the disk is lost by now; the range's start is the best guess.
      throw this.#ioError("write", error.errno, offsetBytes);
    }
  }

  #ioError(kind: "read" | "write", errno: number, offsetBytes: number): BackstoreError {
    const what = `${kind} of ${this.#file.path} at byte ${offsetBytes}: ${errnoName(errno)}`;
    if (errno === ENOSPC || errno === EDQUOT) return new BackstoreError("no-space", offsetBytes, `no space left: ${what}`);
    if (errno === EROFS) return new BackstoreError("write-protected", offsetBytes, `file system is read-only: ${what}`);
    return new BackstoreError(kind, offsetBytes, what);
  }

  #checkWritable(offsetBytes: number): void {
    this.#checkOpen();
    if (this.#file.readOnly) throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only (;ro)`);
  }

  #checkOpen(): void {
    if (!this.#open) throw new Error(`${this.description} is closed`);
  }
}
