// Buffers for the commands that move data the initiator does not see directly: the blocks read
// for COMPARE AND WRITE and VERIFY, a WRITE SAME pattern repeated, EXTENDED COPY chunks. A
// backstore moves data through a DataSegments list and may hand its address to preadv/pwritev,
// so each buffer is a real address: JSC never moves ArrayBuffer contents, and bun:ffi's ptr()
// gives that address. These commands are not the READ/WRITE hot path; a buffer per command
// keeps concurrent ones apart without a pool.
import { ptr } from "bun:ffi";
import { Buffer } from "node:buffer";
import { DataSegments } from "../ring/data-segments.ts";

/** The most bytes one internal transfer moves; bigger jobs go in chunks of this size. */
export const IO_CHUNK_BYTES_MAX = 1024 * 1024;

export class IoBuffer {
  readonly bytes: Uint8Array;
  readonly segments: DataSegments;

  constructor(lengthBytes: number) {
    // At least one byte: ptr() of an empty array has no address.
    this.bytes = new Uint8Array(Math.max(1, lengthBytes));
    this.segments = new DataSegments(this.bytes, ptr(this.bytes), 1);
    this.segments.push(0, lengthBytes);
  }

  /** The segment list cut to the first `lengthBytes` (a shorter last chunk). */
  prefix(lengthBytes: number): DataSegments {
    if (lengthBytes === this.segments.totalBytes) return this.segments;
    const segments = new DataSegments(this.bytes, this.segments.baseAddress, 1);
    segments.push(0, lengthBytes);
    return segments;
  }
}

/** Index of the first byte where `a` and `b` differ, or -1 when equal (same lengths assumed). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.compare(a, b) === 0) return -1;
  for (let index = 0; index < a.length; index += 1) if (a[index] !== b[index]) return index;
  return a.length;
}
