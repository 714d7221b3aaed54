// The iovec array of one preadv/pwritev transfer, built from a command's DataSegments so the
// kernel copies straight between the file and the mapped data area. Made once per store (no
// allocation per command). A transfer may need several calls: at most IOV_MAX iovecs go in one,
// and a short read or write leaves the rest, which advance() trims in place.
import { SEGMENTS_PER_COMMAND_MAX, type DataSegments } from "../../src/ring/data-segments.ts";

/** UIO_MAXIOV: preadv/pwritev refuse more iovecs than this in one call (EINVAL). */
export const IOVECS_PER_CALL_MAX = 1024;
/** struct iovec as built by DataSegments.buildIovecs: base and length, each u64 as two u32. */
const WORDS_PER_IOVEC = 4;
const U32_SPAN = 0x1_0000_0000;

export class IovecBuffer {
  readonly #words = new Uint32Array(SEGMENTS_PER_COMMAND_MAX * WORDS_PER_IOVEC);
  #count = 0;
  #first = 0;

  /** Loads the iovecs for [startBytes, startBytes + lengthBytes) of `segments`. */
  load(segments: DataSegments, startBytes: number, lengthBytes: number): void {
    if (startBytes + lengthBytes > segments.totalBytes) {
      throw new Error(`transfer of ${lengthBytes} bytes at ${startBytes} overruns a ${segments.totalBytes}-byte buffer`);
    }
    this.#count = segments.buildIovecs(startBytes, lengthBytes, this.#words);
    this.#first = 0;
  }

  /** Loads `lengthBytes` of iovecs that all point at one buffer of `chunkBytes` (zeros). */
  loadRepeated(address: number, chunkBytes: number, lengthBytes: number): void {
    let count = 0;
    for (let done = 0; done < lengthBytes && count < SEGMENTS_PER_COMMAND_MAX; done += chunkBytes) {
      this.#set(count, address, Math.min(chunkBytes, lengthBytes - done));
      count += 1;
    }
    this.#count = count;
    this.#first = 0;
  }

  /** The iovecs of the next call, starting at the first unfinished one. */
  get batchWords(): Uint32Array {
    return this.#first === 0 ? this.#words : this.#words.subarray(this.#first * WORDS_PER_IOVEC);
  }

  get batchCount(): number {
    return Math.min(this.#count - this.#first, IOVECS_PER_CALL_MAX);
  }

  /** Marks `bytes` as transferred: finished iovecs are passed over, a partly done one is cut. */
  advance(bytes: number): void {
    let left = bytes;
    while (left > 0 && this.#first < this.#count) {
      const length = this.#lengthAt(this.#first);
      if (left >= length) {
        left -= length;
        this.#first += 1;
        continue;
      }
      this.#set(this.#first, this.#baseAt(this.#first) + left, length - left);
      left = 0;
    }
  }

  /** True when the address and length of every iovec left are multiples of `alignmentBytes`. */
  isAligned(alignmentBytes: number): boolean {
    for (let index = this.#first; index < this.#count; index += 1) {
      if (this.#baseAt(index) % alignmentBytes !== 0 || this.#lengthAt(index) % alignmentBytes !== 0) return false;
    }
    return true;
  }

  #baseAt(index: number): number {
    const slot = index * WORDS_PER_IOVEC;
    return this.#words[slot]! + this.#words[slot + 1]! * U32_SPAN;
  }

  #lengthAt(index: number): number {
    const slot = index * WORDS_PER_IOVEC;
    return this.#words[slot + 2]! + this.#words[slot + 3]! * U32_SPAN;
  }

  #set(index: number, base: number, length: number): void {
    const slot = index * WORDS_PER_IOVEC;
    this.#words[slot] = base % U32_SPAN;
    this.#words[slot + 1] = Math.floor(base / U32_SPAN);
    this.#words[slot + 2] = length % U32_SPAN;
    this.#words[slot + 3] = Math.floor(length / U32_SPAN);
  }
}
