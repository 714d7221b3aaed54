// iovec arrays for requests handed to io_uring or to I/O threads: they must sit at an address
// that stays valid (and unmoved) until the request completes, and other threads must be able to
// read them. So they live in one anonymous mapping, cut into one slot per request token, with a
// single Uint32Array view over it. Pages are touched only as slots are used (MAP_NORESERVE).
import { toArrayBuffer } from "bun:ffi";
import * as libc from "../../src/libc/libc.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { IOVECS_PER_CALL_MAX } from "./iovec-buffer.ts";

/** struct iovec: u64 base, u64 length, each as two u32 words (low first). */
const WORDS_PER_IOVEC = 4;
const IOVEC_BYTES = 16;
const U32_SPAN = 0x1_0000_0000;

export class IovecArena {
  readonly slotCount: number;
  /** iovecs per slot: one preadv/pwritev call's worth (UIO_MAXIOV). */
  readonly iovecsPerSlot = IOVECS_PER_CALL_MAX;
  readonly #address: number;
  readonly #bytes: number;
  readonly #words: Uint32Array;
  /** Per slot: the first iovec not yet transferred, and how many iovecs the slot holds. */
  readonly #first: Int32Array;
  readonly #count: Int32Array;
  #closed = false;

  constructor(slotCount: number) {
    this.slotCount = slotCount;
    this.#bytes = slotCount * this.iovecsPerSlot * IOVEC_BYTES;
    this.#address = libc.mmapAnonymous(this.#bytes);
    this.#words = new Uint32Array(toArrayBuffer(this.#address, 0, this.#bytes));
    this.#first = new Int32Array(slotCount);
    this.#count = new Int32Array(slotCount);
  }

  /**
   * Fills `slot` with the iovecs of [startBytes, +lengthBytes) of `segments`; returns how many,
   * or -1 when the range needs more than one slot holds (the caller moves it another way).
   */
  load(slot: number, segments: DataSegments, startBytes: number, lengthBytes: number): number {
    const count = segments.buildIovecsAt(startBytes, lengthBytes, this.#words, slot * this.iovecsPerSlot * WORDS_PER_IOVEC, this.iovecsPerSlot);
    this.#first[slot] = 0;
    this.#count[slot] = Math.max(0, count);
    return count;
  }

  /** Address of the slot's first untransferred iovec (what the next call starts from). */
  addressOf(slot: number): number {
    return this.#address + (slot * this.iovecsPerSlot + this.#first[slot]!) * IOVEC_BYTES;
  }

  /** iovecs left in the slot. */
  remainingOf(slot: number): number {
    return this.#count[slot]! - this.#first[slot]!;
  }

  /** Marks `bytes` transferred: finished iovecs are passed over, a partly done one is cut. */
  advance(slot: number, bytes: number): void {
    const words = this.#words;
    const base = slot * this.iovecsPerSlot * WORDS_PER_IOVEC;
    let left = bytes;
    let first = this.#first[slot]!;
    const count = this.#count[slot]!;
    while (left > 0 && first < count) {
      const at = base + first * WORDS_PER_IOVEC;
      const length = words[at + 2]! + words[at + 3]! * U32_SPAN;
      if (left >= length) {
        left -= length;
        first += 1;
        continue;
      }
      const address = words[at]! + words[at + 1]! * U32_SPAN + left;
      words[at] = address % U32_SPAN;
      words[at + 1] = Math.floor(address / U32_SPAN);
      words[at + 2] = (length - left) % U32_SPAN;
      words[at + 3] = Math.floor((length - left) / U32_SPAN);
      left = 0;
    }
    this.#first[slot] = first;
  }

  /** True when every iovec left in the slot has address and length multiples of `alignmentBytes`. */
  isAligned(slot: number, alignmentBytes: number): boolean {
    const words = this.#words;
    const base = slot * this.iovecsPerSlot * WORDS_PER_IOVEC;
    for (let index = this.#first[slot]!; index < this.#count[slot]!; index += 1) {
      const at = base + index * WORDS_PER_IOVEC;
      const address = words[at]! + words[at + 1]! * U32_SPAN;
      const length = words[at + 2]! + words[at + 3]! * U32_SPAN;
      if (address % alignmentBytes !== 0 || length % alignmentBytes !== 0) return false;
    }
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.munmap(this.#address, this.#bytes);
  }
}
