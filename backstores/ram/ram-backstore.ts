// A sparse RAM disk whose bytes live in a tmpfs file (/dev/shm), so they outlive the handler
// (kill -9 included): a restarted handler reattaches by the device's key. Data moves with
// preadv/pwritev between that file and the data area, as in the file store: the kernel copies,
// memory is taken a page at a time on first write, holes read as zeros without allocating, and
// UNMAP punches holes to give pages back.
//
// Why not mmap the file: a JS view over a big mapping makes JavaScriptCore count it as heap
// memory, and every later allocation in the process pays for it (1 MiB allocations ran 7-14x
// slower with a 512 MiB view alive); a full tmpfs would also fault the mapping with SIGBUS
// where pwritev answers ENOSPC; and a view stops at 4 GiB.
import { rmSync } from "node:fs";
import { totalmem } from "node:os";
import { EDQUOT, ENOSPC, errnoName, SystemCallError } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { lbaStatusBySeek, rangeIsHole } from "../file/seek-status.ts";
import { LIBC_SYSCALLS, type StoreSyscalls } from "../file/syscalls.ts";
import { Transfer } from "../file/transfer.ts";
import { BackstoreError, BackstoreOpenError, type Backstore, type BackstoreCapabilities, type LbaStatusExtent } from "../types.ts";
import { dataRanges, openShmFile, SHM_DIRECTORY, shmFilePath } from "./shm-file.ts";

/** The memory cap counts in chunks: a chunk counts from its first write until it holds no data. */
export const RAM_CHUNK_BYTES = 1024 * 1024;
/** One byte of chunk state per MiB: 16 TiB keeps the chunk map at 16 MiB. */
export const RAM_SIZE_MAX_BYTES = 16 * 1024 ** 4;
/** Without ;max=, one store may take at most this share of the machine's memory. */
export const RAM_DEFAULT_MEMORY_FRACTION = 0.5;
/** tmpfs frees whole pages; a partial page in an unmapped range is zeroed in place. */
const PAGE_BYTES = 4096;

const CHUNK_EMPTY = 0;
const CHUNK_COUNTED = 1;

export interface RamBackstoreOptions {
  label?: string;
  /** Stable device id ("user_1/disk0"): the bytes live in a named file and survive restarts. */
  deviceKey?: string;
  /** Memory cap (;max=); writes needing more answer "no-space". Default: half the machine's memory. */
  maxBytes?: number;
  /** The SCSI block size: LBA status extents are whole blocks. Default 512. */
  blockSizeBytes?: number;
  /** Where the shared-memory file lives (default /dev/shm). */
  directory?: string;
  syscalls?: StoreSyscalls;
}

export function defaultRamMaxBytes(): number {
  return Math.floor(totalmem() * RAM_DEFAULT_MEMORY_FRACTION);
}

export class RamBackstore implements Backstore {
  readonly kind = "ram";
  readonly description: string;
  readonly sizeBytes: number;
  readonly maxBytes: number;
  /** The named shared-memory file, or undefined for a store that dies with its descriptor. */
  readonly path: string | undefined;
  readonly capabilities: BackstoreCapabilities = {
    readOnly: false,
    unmap: true,
    unmapReadsZeroes: true,
    lbaStatus: true,
    // Written bytes are in the kernel's page cache at once: a crash of the handler cannot lose
    // them, and nothing a flush could do makes them survive a reboot.
    volatileCache: false,
    unmapGranularityBytes: PAGE_BYTES,
  };
  readonly #syscalls: StoreSyscalls;
  readonly #transfer: Transfer;
  readonly #blockSizeBytes: number;
  readonly #chunkStates: Uint8Array;
  #countedBytes = 0;
  #fd: number;

  constructor(sizeBytes: number, options: RamBackstoreOptions = {}) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes > RAM_SIZE_MAX_BYTES) {
      throw new BackstoreOpenError(`a RAM store holds 1 byte to ${RAM_SIZE_MAX_BYTES} bytes (16 TiB), not ${sizeBytes}`);
    }
    this.maxBytes = options.maxBytes ?? defaultRamMaxBytes();
    if (this.maxBytes < RAM_CHUNK_BYTES) {
      throw new BackstoreOpenError(`a RAM store's memory cap (${this.maxBytes} bytes) must be at least one ${RAM_CHUNK_BYTES}-byte chunk`);
    }
    this.sizeBytes = sizeBytes;
    this.description = options.label === undefined ? "ram" : `ram/${options.label}`;
    this.#syscalls = options.syscalls ?? LIBC_SYSCALLS;
    this.#transfer = new Transfer(this.#syscalls);
    this.#blockSizeBytes = options.blockSizeBytes ?? 512;
    this.#chunkStates = new Uint8Array(Math.ceil(sizeBytes / RAM_CHUNK_BYTES));
    const directory = options.directory ?? SHM_DIRECTORY;
    this.path = options.deviceKey === undefined ? undefined : shmFilePath(options.deviceKey, directory);
    this.#fd = openShmFile(this.path, directory);
    try {
      this.#attach();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** Memory the cap counts now (whole chunks); pages really held are at most this. */
  get allocatedBytes(): number {
    return this.#countedBytes;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    const transfer = this.#transfer;
    transfer.load(target, targetStartBytes, lengthBytes);
    if (!transfer.read(this.#openFd(), offsetBytes, lengthBytes)) {
      throw new BackstoreError("read", offsetBytes + transfer.doneBytes, this.#failure("read", transfer.errno, offsetBytes + transfer.doneBytes));
    }
    // The file is never shorter than sizeBytes (grown at open), so this stays unreachable
    // unless someone truncates /dev/shm files under us; zeros beat stale data-area bytes.
    if (transfer.doneBytes < lengthBytes) target.fill(0, targetStartBytes + transfer.doneBytes, lengthBytes - transfer.doneBytes);
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number): void {
    const fd = this.#openFd();
    this.#countChunks(offsetBytes, lengthBytes);
    const transfer = this.#transfer;
    transfer.load(source, sourceStartBytes, lengthBytes);
    if (transfer.write(fd, offsetBytes, lengthBytes, 0)) return;
    const failedAt = offsetBytes + transfer.doneBytes;
    const kind = transfer.errno === ENOSPC || transfer.errno === EDQUOT ? "no-space" : "write";
    throw new BackstoreError(kind, failedAt, this.#failure("write", transfer.errno, failedAt));
  }

  flush(): void {
    this.#openFd();
  }

  unmap(offsetBytes: number, lengthBytes: number): void {
    this.writeZeroes(offsetBytes, lengthBytes);
  }

  /** Zeros are holes here: the range is always punched, whatever `deallocate` says. */
  writeZeroes(offsetBytes: number, lengthBytes: number): void {
    const fd = this.#openFd();
    try {
      this.#syscalls.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, offsetBytes, lengthBytes, this.path ?? "RAM store");
    } catch (error) {
      if (!(error instanceof SystemCallError)) throw error;
      throw new BackstoreError("write", offsetBytes, this.#failure("punch", error.errno, offsetBytes));
    }
    this.#uncountEmptyChunks(offsetBytes, lengthBytes);
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    return lbaStatusBySeek(this.#syscalls, this.#openFd(), offsetBytes, this.sizeBytes, this.#blockSizeBytes);
  }

  /** Closes the file; a named one stays for the next handler to reattach. */
  close(): void {
    if (this.#fd < 0) return;
    libc.close(this.#fd);
    this.#fd = -1;
  }

  /** The device was removed: the named file goes too. */
  destroy(): void {
    this.close();
    if (this.path !== undefined) rmSync(this.path, { force: true });
  }

  /** Locks the file, sizes it and counts the chunks that hold data from an earlier life. */
  #attach(): void {
    const subject = this.path ?? "RAM store";
    if (!libc.flock(this.#fd, libc.LOCK_EX | libc.LOCK_NB, subject)) {
      throw new BackstoreOpenError(`${subject} is in use by another handler (flock): two handlers must never serve one RAM store`);
    }
    // Grown, never shrunk: a dev_size typed too small must not cut off data already written.
    if (libc.fstat(this.#fd, subject).sizeBytes < this.sizeBytes) libc.ftruncate(this.#fd, this.sizeBytes, subject);
    for (const [startBytes, endBytes] of dataRanges(this.#fd, this.sizeBytes)) {
      const endChunk = Math.ceil(endBytes / RAM_CHUNK_BYTES);
      for (let chunk = Math.floor(startBytes / RAM_CHUNK_BYTES); chunk < endChunk; chunk += 1) this.#setCounted(chunk);
    }
  }

  /** Counts the chunks a write will touch, refusing the write if they would pass the cap. */
  #countChunks(offsetBytes: number, lengthBytes: number): void {
    const firstChunk = Math.floor(offsetBytes / RAM_CHUNK_BYTES);
    const endChunk = Math.ceil((offsetBytes + lengthBytes) / RAM_CHUNK_BYTES);
    let newBytes = 0;
    for (let chunk = firstChunk; chunk < endChunk; chunk += 1) {
      if (this.#chunkStates[chunk] === CHUNK_EMPTY) newBytes += this.#chunkLength(chunk);
    }
    if (newBytes === 0) return;
    if (this.#countedBytes + newBytes > this.maxBytes) {
      throw new BackstoreError("no-space", offsetBytes, `${this.description} reached its memory cap of ${this.maxBytes} bytes (;max=)`);
    }
    for (let chunk = firstChunk; chunk < endChunk; chunk += 1) this.#setCounted(chunk);
  }

  /** After a punch: chunks inside the range are empty; the edge chunks are asked. */
  #uncountEmptyChunks(offsetBytes: number, lengthBytes: number): void {
    const firstChunk = Math.floor(offsetBytes / RAM_CHUNK_BYTES);
    const endChunk = Math.ceil((offsetBytes + lengthBytes) / RAM_CHUNK_BYTES);
    for (let chunk = firstChunk; chunk < endChunk; chunk += 1) {
      if (this.#chunkStates[chunk] === CHUNK_EMPTY) continue;
      const chunkStart = chunk * RAM_CHUNK_BYTES;
      const chunkEnd = chunkStart + this.#chunkLength(chunk);
      const covered = offsetBytes <= chunkStart && offsetBytes + lengthBytes >= chunkEnd;
      if (covered || rangeIsHole(this.#syscalls, this.#fd, chunkStart, chunkEnd)) {
        this.#chunkStates[chunk] = CHUNK_EMPTY;
        this.#countedBytes -= this.#chunkLength(chunk);
      }
    }
  }

  #setCounted(chunk: number): void {
    if (this.#chunkStates[chunk] === CHUNK_COUNTED) return;
    this.#chunkStates[chunk] = CHUNK_COUNTED;
    this.#countedBytes += this.#chunkLength(chunk);
  }

  #chunkLength(chunk: number): number {
    return Math.min(RAM_CHUNK_BYTES, this.sizeBytes - chunk * RAM_CHUNK_BYTES);
  }

  #failure(what: string, errno: number, positionBytes: number): string {
    return `${this.description} (${this.path ?? "unnamed"}): ${what} at byte ${positionBytes}: ${errnoName(errno)}`;
  }

  #openFd(): number {
    if (this.#fd < 0) throw new Error(`${this.description} is closed`);
    return this.#fd;
  }
}
