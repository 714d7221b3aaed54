// A scatter-gather list over one memory region (the mapped data area, or a scratch mapping):
// the iovecs of one command, copied out of its ring entry. Offsets are bytes from the start of
// `memory`; `baseAddress` is memory[0]'s address, so preadv/pwritev can aim straight at it.

/** The iovec arrays grow to this many entries at most; beyond it an entry is malformed. */
export const SEGMENTS_PER_COMMAND_MAX = 65536;

export class DataSegments {
  readonly memory: Uint8Array;
  readonly baseAddress: number;
  count = 0;
  totalBytes = 0;
  #offsets: Float64Array;
  #lengths: Float64Array;

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
    let copied = 0;
    this.#walk(startBytes, source.byteLength, (offset, length) => {
      this.memory.set(source.subarray(copied, copied + length), offset);
      copied += length;
    });
    return copied;
  }

  /** Copies from the list, starting `startBytes` into it, into `target`; returns bytes copied. */
  copyTo(target: Uint8Array, startBytes = 0): number {
    let copied = 0;
    this.#walk(startBytes, target.byteLength, (offset, length) => {
      target.set(this.memory.subarray(offset, offset + length), copied);
      copied += length;
    });
    return copied;
  }

  /** Fills `lengthBytes` of the list from `startBytes` with `value` (to the end by default). */
  fill(value: number, startBytes = 0, lengthBytes = this.totalBytes - startBytes): void {
    this.#walk(startBytes, lengthBytes, (offset, length) => {
      this.memory.fill(value, offset, offset + length);
    });
  }

  /**
   * Writes `struct iovec` entries for [startBytes, startBytes + lengthBytes) of the list into
   * `scratch` (pairs of u32 low/high words per u64, so no BigInt is made) and returns how many.
   */
  buildIovecs(startBytes: number, lengthBytes: number, scratch: Uint32Array): number {
    let written = 0;
    this.#walk(startBytes, lengthBytes, (offset, length) => {
      if (written * 4 + 4 > scratch.length) throw new Error("iovec scratch too small for this command");
      const address = this.baseAddress + offset;
      const slot = written * 4;
      scratch[slot] = address % 0x1_0000_0000;
      scratch[slot + 1] = Math.floor(address / 0x1_0000_0000);
      scratch[slot + 2] = length % 0x1_0000_0000;
      scratch[slot + 3] = Math.floor(length / 0x1_0000_0000);
      written += 1;
    });
    return written;
  }

  /** Calls `visit(memoryOffset, length)` for each piece of [startBytes, startBytes + lengthBytes). */
  #walk(startBytes: number, lengthBytes: number, visit: (offset: number, length: number) => void): void {
    let skip = startBytes;
    let remaining = Math.min(lengthBytes, Math.max(0, this.totalBytes - startBytes));
    for (let index = 0; index < this.count && remaining > 0; index += 1) {
      const segmentLength = this.#lengths[index]!;
      if (skip >= segmentLength) {
        skip -= segmentLength;
        continue;
      }
      const length = Math.min(segmentLength - skip, remaining);
      visit(this.#offsets[index]! + skip, length);
      remaining -= length;
      skip = 0;
    }
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
