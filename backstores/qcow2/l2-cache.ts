// A bounded cache of L2 table slices, like QEMU's qcow2-cache.c: fixed-size entries read on a
// miss and evicted least-recently-used, sized at open. Keys are the host offset of the slice,
// so the same bytes are never cached twice whatever the L1 table says. Guest data never passes
// through here. Slices keep memory and reads small when a table is large (a 2 MiB cluster has a
// 2 MiB L2 table; one 4 KiB read finds an entry in it).
import type { ImageFile } from "./image-file.ts";

/** QEMU's default l2-cache-entry-size: tables larger than this are cached in slices. */
export const L2_SLICE_BYTES = 4096;
/** QEMU's DEFAULT_L2_CACHE_MAX_SIZE on Linux: the default never exceeds it. */
export const L2_CACHE_BYTES_DEFAULT_MAX = 32 * 1024 * 1024;
/** At least this many slices are cached, whatever the option says. */
export const L2_CACHE_SLICES_MIN = 4;

export interface L2Slice {
  bytes: Uint8Array;
  view: DataView;
}

/** The default budget: enough to map the whole disk, at most L2_CACHE_BYTES_DEFAULT_MAX. */
export function defaultL2CacheBytes(virtualSizeBytes: number, clusterBytes: number, entryBytes: number): number {
  const tableBytes = Math.ceil(virtualSizeBytes / clusterBytes) * entryBytes;
  return Math.min(tableBytes, L2_CACHE_BYTES_DEFAULT_MAX);
}

export class L2Cache {
  readonly file: ImageFile;
  readonly sliceBytes: number;
  readonly capacitySlices: number;
  hits = 0;
  misses = 0;
  /** Insertion order is recency order: a hit moves the slice to the end. */
  readonly #slices = new Map<number, L2Slice>();

  constructor(file: ImageFile, sliceBytes: number, budgetBytes: number) {
    this.file = file;
    this.sliceBytes = sliceBytes;
    this.capacitySlices = Math.max(L2_CACHE_SLICES_MIN, Math.floor(budgetBytes / sliceBytes));
  }

  /** The slice at host offset `sliceOffsetBytes`; a miss reads it (MEDIUM ERROR at `guestOffsetBytes` when it cannot). */
  get(sliceOffsetBytes: number, guestOffsetBytes: number): L2Slice {
    const cached = this.#slices.get(sliceOffsetBytes);
    if (cached !== undefined) {
      this.hits += 1;
      this.#slices.delete(sliceOffsetBytes);
      this.#slices.set(sliceOffsetBytes, cached);
      return cached;
    }
    this.misses += 1;
    // A slice that cannot be read is dropped (the next miss makes a new buffer).
    const slice = this.#take();
    this.file.readOrMediumError(slice.bytes, sliceOffsetBytes, guestOffsetBytes, "L2 table slice");
    this.#slices.set(sliceOffsetBytes, slice);
    return slice;
  }

  get sizeSlices(): number {
    return this.#slices.size;
  }

  clear(): void {
    this.#slices.clear();
  }

  /** A buffer for a new slice: the least recently used one when full, else a new one. */
  #take(): L2Slice {
    if (this.#slices.size < this.capacitySlices) {
      const bytes = new Uint8Array(this.sliceBytes);
      return { bytes, view: new DataView(bytes.buffer) };
    }
    const oldest = this.#slices.keys().next().value!;
    const slice = this.#slices.get(oldest)!;
    this.#slices.delete(oldest);
    return slice;
  }
}
