// A scatter-gather list over one memory region (the mapped data area, or a scratch mapping):
// the iovecs of one command, copied out of its ring entry. Offsets are bytes from the start of
// `memory`; `baseAddress` is memory[0]'s address, so preadv/pwritev can aim straight at it.

/** The iovec arrays grow to this many entries at most; beyond it an entry is malformed. */
export const SEGMENTS_PER_COMMAND_MAX = 65536;
/** struct iovec as u32 words: base low/high, length low/high. */
const WORDS_PER_IOVEC = 4;
const U32_SPAN = 0x1_0000_0000;

export class DataSegments {
  readonly memory: Uint8Array;
  readonly baseAddress: number;
  count = 0;
  totalBytes = 0;
  #offsets: Float64Array;
  #lengths: Float64Array;
  #seekSkip = 0;

  constructor(memory: Uint8Array, baseAddress: number, capacity = 64) {
    this.memory = memory;
    this.baseAddress = baseAddress;
    this.#offsets = new Float64Array(capacity);
    this.#lengths = new Float64Array(capacity);
  }

  reset(): void {
    this.count = 0;
    this.totalBytes = 0;
  }

  /** Appends a segment; the caller has already checked it lies inside `memory`. */
  push(offsetBytes: number, lengthBytes: number): void {
    if (this.count === this.#offsets.length) this.#grow();
    this.#offsets[this.count] = offsetBytes;
    this.#lengths[this.count] = lengthBytes;
    this.count += 1;
    this.totalBytes += lengthBytes;
  }

  offsetAt(index: number): number {
    return this.#offsets[index]!;
  }

  lengthAt(index: number): number {
    return this.#lengths[index]!;
  }

  /** Copies `source` into the list, starting `startBytes` into it; returns bytes copied. */
  copyFrom(source: Uint8Array, startBytes = 0): number {
    const memory = this.memory;
    let copied = 0;
    let index = this.#seek(startBytes);
    let skip = this.#seekSkip;
    let remaining = Math.min(source.byteLength, Math.max(0, this.totalBytes - startBytes));
    for (; index < this.count && remaining > 0; index += 1) {
      const length = Math.min(this.#lengths[index]! - skip, remaining);
      const offset = this.#offsets[index]! + skip;
      // One segment taking all of `source` (the common reply) needs no subarray.
      if (copied === 0 && length === source.byteLength) memory.set(source, offset);
      else memory.set(source.subarray(copied, copied + length), offset);
      copied += length;
      remaining -= length;
      skip = 0;
    }
    return copied;
  }

  /** Copies from the list, starting `startBytes` into it, into `target`; returns bytes copied. */
  copyTo(target: Uint8Array, startBytes = 0): number {
    const memory = this.memory;
    let copied = 0;
    let index = this.#seek(startBytes);
    let skip = this.#seekSkip;
    let remaining = Math.min(target.byteLength, Math.max(0, this.totalBytes - startBytes));
    for (; index < this.count && remaining > 0; index += 1) {
      const length = Math.min(this.#lengths[index]! - skip, remaining);
      const offset = this.#offsets[index]! + skip;
      target.set(memory.subarray(offset, offset + length), copied);
      copied += length;
      remaining -= length;
      skip = 0;
    }
    return copied;
  }

  /** Fills `lengthBytes` of the list from `startBytes` with `value` (to the end by default). */
  fill(value: number, startBytes = 0, lengthBytes = this.totalBytes - startBytes): void {
    const memory = this.memory;
    let index = this.#seek(startBytes);
    let skip = this.#seekSkip;
    let remaining = Math.min(lengthBytes, Math.max(0, this.totalBytes - startBytes));
    for (; index < this.count && remaining > 0; index += 1) {
      const length = Math.min(this.#lengths[index]! - skip, remaining);
      const offset = this.#offsets[index]! + skip;
      memory.fill(value, offset, offset + length);
      remaining -= length;
      skip = 0;
    }
  }

  /**
   * Writes `struct iovec` entries for [startBytes, startBytes + lengthBytes) of the list into
   * `scratch` (pairs of u32 low/high words per u64, so no BigInt is made) and returns how many.
   */
  buildIovecs(startBytes: number, lengthBytes: number, scratch: Uint32Array): number {
    const written = this.buildIovecsAt(startBytes, lengthBytes, scratch, 0, scratch.length / WORDS_PER_IOVEC);
    if (written < 0) throw new Error("iovec scratch too small for this command");
    return written;
  }

  /**
   * Like buildIovecs, into `words` from word `wordOffset` on, at most `countMax` iovecs; returns
   * how many, or -1 when the range needs more (the caller then moves it another way).
   */
  buildIovecsAt(startBytes: number, lengthBytes: number, words: Uint32Array, wordOffset: number, countMax: number): number {
    let written = 0;
    let index = this.#seek(startBytes);
    let skip = this.#seekSkip;
    let remaining = Math.min(lengthBytes, Math.max(0, this.totalBytes - startBytes));
    for (; index < this.count && remaining > 0; index += 1) {
      if (written === countMax) return -1;
      const length = Math.min(this.#lengths[index]! - skip, remaining);
      const address = this.baseAddress + this.#offsets[index]! + skip;
      const slot = wordOffset + written * WORDS_PER_IOVEC;
      words[slot] = address % U32_SPAN;
      words[slot + 1] = Math.floor(address / U32_SPAN);
      words[slot + 2] = length % U32_SPAN;
      words[slot + 3] = Math.floor(length / U32_SPAN);
      written += 1;
      remaining -= length;
      skip = 0;
    }
    return written;
  }

  /**
   * The index of the segment holding byte `startBytes` of the list; the bytes to pass over in
   * it are left in #seekSkip (a field, so the walkers above need no closure or tuple).
   */
  #seek(startBytes: number): number {
    let skip = startBytes;
    let index = 0;
    while (index < this.count && skip >= this.#lengths[index]!) {
      skip -= this.#lengths[index]!;
      index += 1;
    }
    this.#seekSkip = skip;
    return index;
  }

  #grow(): void {
    const capacity = Math.min(this.#offsets.length * 2, SEGMENTS_PER_COMMAND_MAX);
    if (capacity === this.#offsets.length) throw new Error(`more than ${SEGMENTS_PER_COMMAND_MAX} segments in one command`);
    const offsets = new Float64Array(capacity);
    const lengths = new Float64Array(capacity);
    offsets.set(this.#offsets);
    lengths.set(this.#lengths);
    this.#offsets = offsets;
    this.#lengths = lengths;
  }
}
