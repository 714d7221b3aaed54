// One opened file of a chain (an image, a raw backing file or an external data file): its
// descriptor, size and identity, with the two kinds of reads the reader does. Metadata comes in
// through small preads into buffers; guest data goes straight into the data area with preadv.
// Reading past the end of the file is never padded with zeros the way QEMU pads it: the caller
// learns how many bytes were there and reports MEDIUM ERROR (or refuses, at open time).
import { BackstoreError } from "../types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import * as libc from "../../src/libc/libc.ts";
import { SystemCallError } from "../../src/libc/errno.ts";
import { ImageRefusedError } from "./errors.ts";
import { hex } from "./fields.ts";

const SEEK_END = 2;
/** Linux IOV_MAX: one preadv takes at most this many iovecs. */
export const IOVECS_PER_CALL_MAX = 1024;
/** u32 words per struct iovec in the scratch array (base lo/hi, length lo/hi). */
const IOVEC_WORDS = 4;

export class ImageFile {
  readonly path: string;
  readonly fd: number;
  readonly sizeBytes: number;
  /** Bytes the file takes on disk (st_blocks), for `inspect`. */
  readonly allocatedBytes: number;
  /** "device:inode", to find loops in a backing chain. */
  readonly identity: string;
  #closed = false;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
    const status = libc.fstat(fd, path);
    this.identity = `${status.device}:${status.inode}`;
    this.allocatedBytes = status.blocks512 * 512;
    // lseek(SEEK_END) also sizes block devices, whose st_size is 0.
    const end = libc.lseekRaw(fd, 0, SEEK_END);
    this.sizeBytes = end >= 0 ? end : status.sizeBytes;
  }

  /** Opens `path` read-only; a failure is a refusal naming the errno. */
  static open(path: string, role: string): ImageFile {
    let fd: number;
    try {
      fd = libc.open(path, libc.O_RDONLY);
    } catch (error) {
      if (error instanceof SystemCallError) throw new ImageRefusedError(path, `cannot open ${role}: ${error.code}`);
      throw error;
    }
    try {
      return new ImageFile(path, fd);
    } catch (error) {
      libc.close(fd);
      throw error;
    }
  }

  /** Reads into `target` from `offsetBytes`; returns the bytes read, fewer only at the end of the file. */
  readAt(target: Uint8Array, offsetBytes: number): number {
    let done = 0;
    while (done < target.byteLength) {
      const got = libc.pread(this.fd, target.subarray(done), target.byteLength - done, offsetBytes + done, this.path);
      if (got === 0) break;
      done += got;
    }
    return done;
  }

  /** Open-time metadata: all of it must be in the file, or the image is refused. */
  readExactOrRefuse(target: Uint8Array, offsetBytes: number, what: string): void {
    if (offsetBytes + target.byteLength > this.sizeBytes) {
      throw new ImageRefusedError(this.path, `${what} at ${hex(offsetBytes)} (${target.byteLength} bytes) lies past the end of the file (${this.sizeBytes} bytes)`);
    }
    let got: number;
    try {
      got = this.readAt(target, offsetBytes);
    } catch (error) {
      if (error instanceof SystemCallError) throw new ImageRefusedError(this.path, `cannot read ${what}: ${error.code}`);
      throw error;
    }
    if (got < target.byteLength) throw new ImageRefusedError(this.path, `${what} is cut short by the end of the file`);
  }

  /** Read-time metadata (L2 slices, compressed clusters): a short read or an error is MEDIUM ERROR at `guestOffsetBytes`. */
  readOrMediumError(target: Uint8Array, offsetBytes: number, guestOffsetBytes: number, what: string): void {
    if (offsetBytes + target.byteLength > this.sizeBytes) {
      throw new BackstoreError("read", guestOffsetBytes, `${this.path}: ${what} at ${hex(offsetBytes)} lies past the end of the file`);
    }
    let got: number;
    try {
      got = this.readAt(target, offsetBytes);
    } catch (error) {
      if (error instanceof SystemCallError) throw new BackstoreError("read", guestOffsetBytes, `${this.path}: reading ${what}: ${error.code}`);
      throw error;
    }
    if (got < target.byteLength) throw new BackstoreError("read", guestOffsetBytes, `${this.path}: ${what} is cut short by the end of the file`);
  }

  /**
   * Reads `lengthBytes` from `hostOffsetBytes` straight into `target` from `targetStartBytes`
   * (preadv over the data area, IOVECS_PER_CALL_MAX segments a call). Bytes past the end of the
   * file, or an I/O error, are MEDIUM ERROR at the guest offset of the first byte not read.
   */
  readIntoSegments(target: DataSegments, targetStartBytes: number, lengthBytes: number, hostOffsetBytes: number, guestOffsetBytes: number, scratch: Uint32Array): void {
    if (hostOffsetBytes + lengthBytes > this.sizeBytes) {
      const inFile = Math.max(0, this.sizeBytes - hostOffsetBytes);
      throw new BackstoreError("read", guestOffsetBytes + inFile, `${this.path}: data at ${hex(hostOffsetBytes)} (${lengthBytes} bytes) lies past the end of the file`);
    }
    let done = 0;
    while (done < lengthBytes) {
      const pieceBytes = bytesWithinIovecs(target, targetStartBytes + done, lengthBytes - done, scratch.length / IOVEC_WORDS);
      // The SCSI layer sizes the data area for the whole transfer; a shorter list is our bug.
      if (pieceBytes === 0) throw new Error(`data segments end before byte ${targetStartBytes + done} of the transfer`);
      const count = target.buildIovecs(targetStartBytes + done, pieceBytes, scratch);
      const got = libc.preadvRaw(this.fd, scratch, count, hostOffsetBytes + done);
      if (got < 0) throw new BackstoreError("read", guestOffsetBytes + done, `${this.path}: preadv at ${hex(hostOffsetBytes + done)}: errno ${-got}`);
      if (got === 0) throw new BackstoreError("read", guestOffsetBytes + done, `${this.path}: end of file at ${hex(hostOffsetBytes + done)}`);
      done += got;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }
}

/** A scratch array for `readIntoSegments`, made once per backstore. */
export function makeIovecScratch(): Uint32Array {
  return new Uint32Array(IOVECS_PER_CALL_MAX * IOVEC_WORDS);
}

/** How many of `lengthBytes` from `startBytes` of the list fit in `iovecsMax` segments. */
function bytesWithinIovecs(list: DataSegments, startBytes: number, lengthBytes: number, iovecsMax: number): number {
  let skip = startBytes;
  let covered = 0;
  let used = 0;
  for (let index = 0; index < list.count && covered < lengthBytes && used < iovecsMax; index += 1) {
    const segmentBytes = list.lengthAt(index);
    if (skip >= segmentBytes) {
      skip -= segmentBytes;
      continue;
    }
    covered += segmentBytes - skip;
    skip = 0;
    used += 1;
  }
  return Math.min(covered, lengthBytes);
}
