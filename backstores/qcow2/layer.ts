// One image of a backing chain, seen from the read path: it maps a guest offset to a run of
// bytes that share one source (QEMU's qcow2_get_host_offset() with its `bytes` out-parameter).
// Mapping is metadata only; the backstore does the data I/O per run.
import type { ImageFile } from "./image-file.ts";

export type ImageFormat = "qcow2" | "qcow" | "raw";

/** Where a run's bytes come from. */
export const Source = {
  /** Bytes at `hostOffsetBytes` in `file`. */
  Data: 0,
  /** Reads as zeros, hiding any backing file. */
  Zero: 1,
  /** Not allocated here: the backing file's bytes, or zeros without one. */
  Backing: 2,
  /** Part of one compressed cluster (`compressedOffsetBytes`, `compressedBytes`). */
  Compressed: 3,
} as const;
export type SourceType = (typeof Source)[keyof typeof Source];

/** The out-parameter of Layer.map(): one object per layer, reused for every lookup. */
export class Mapping {
  source: SourceType = Source.Zero;
  /** Bytes from the asked offset that share this source (≥ 1, ≤ the asked length). */
  lengthBytes = 0;
  file: ImageFile | undefined = undefined;
  hostOffsetBytes = 0;
  compressedOffsetBytes = 0;
  compressedBytes = 0;
  /** Where the asked offset lies in the decompressed cluster. */
  offsetInClusterBytes = 0;

  set(source: SourceType, lengthBytes: number): void {
    this.source = source;
    this.lengthBytes = lengthBytes;
  }
}

export interface Layer {
  readonly format: ImageFormat;
  readonly file: ImageFile;
  /** Guest bytes this image holds; reads past it (from an overlay) are zeros. */
  readonly sizeBytes: number;
  /** The backing file name as stored in the image, and its format when the image names it. */
  readonly backingName: string | undefined;
  readonly backingFormat: string | undefined;
  readonly warnings: readonly string[];
  /** Maps [offsetBytes, offsetBytes + lengthBytes), inside sizeBytes, to its first run. */
  map(offsetBytes: number, lengthBytes: number, out: Mapping): void;
  /** The decompressed cluster of a Compressed mapping (cached). */
  decompressedCluster(mapping: Mapping, guestOffsetBytes: number): Uint8Array;
  close(): void;
}
