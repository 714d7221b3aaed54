// One preadv/pwritev transfer between a file and a command's data buffer, carried through short
// transfers and IOV_MAX-sized batches. A failed call leaves `errno` and `doneBytes` set, so the
// caller can retry the rest another way (buffered after O_DIRECT refused, pwritev after RWF_DSYNC
// refused) or report the failing offset. Made once per store; nothing is allocated per command.
import { EIO } from "../../src/libc/errno.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { IovecBuffer } from "./iovec-buffer.ts";
import type { StoreSyscalls } from "./syscalls.ts";

export class Transfer {
  readonly iovecs = new IovecBuffer();
  /** Bytes moved so far by the loaded transfer. */
  doneBytes = 0;
  /** errno of the call that failed; 0 when the last call did not fail. */
  errno = 0;
  readonly #syscalls: StoreSyscalls;

  constructor(syscalls: StoreSyscalls) {
    this.#syscalls = syscalls;
  }

  /** Starts a transfer of [startBytes, +lengthBytes) of `segments`. */
  load(segments: DataSegments, startBytes: number, lengthBytes: number): void {
    this.iovecs.load(segments, startBytes, lengthBytes);
    this.doneBytes = 0;
    this.errno = 0;
  }

  /** Starts a transfer of `lengthBytes` of zeros from a zero buffer at `address`. */
  loadZeros(address: number, bufferBytes: number, lengthBytes: number): void {
    this.iovecs.loadRepeated(address, bufferBytes, lengthBytes);
    this.doneBytes = 0;
    this.errno = 0;
  }

  /** Reads until `lengthBytes` are in or the file ends (true), or a call fails (false). */
  read(fd: number, offsetBytes: number, lengthBytes: number): boolean {
    const iovecs = this.iovecs;
    while (this.doneBytes < lengthBytes) {
      const result = this.#syscalls.preadv(fd, iovecs.batchWords, iovecs.batchCount, offsetBytes + this.doneBytes);
      if (result === 0) return true; // end of file: the caller decides what the rest is
      if (result < 0) {
        this.errno = -result;
        return false;
      }
      this.doneBytes += result;
      iovecs.advance(result);
    }
    return true;
  }

  /** Writes until `lengthBytes` are out (true), or a call fails (false). */
  write(fd: number, offsetBytes: number, lengthBytes: number, flags: number): boolean {
    const iovecs = this.iovecs;
    while (this.doneBytes < lengthBytes) {
      const result = this.#syscalls.pwritev(fd, iovecs.batchWords, iovecs.batchCount, offsetBytes + this.doneBytes, flags);
      if (result <= 0) {
        // 0 bytes for a non-empty request is no progress: report it as EIO rather than spin.
        this.errno = result === 0 ? EIO : -result;
        return false;
      }
      this.doneBytes += result;
      iovecs.advance(result);
    }
    return true;
  }
}
