// A raw backing file (or the base of a chain): guest offset = file offset. QEMU sizes it in
// whole 512-byte sectors (DIV_ROUND_UP of the file length) and reads the tail of the last
// sector as zeros; so do we.
import type { ImageFile } from "./image-file.ts";
import { Mapping, Source, type Layer } from "./layer.ts";

const SECTOR_BYTES = 512;

export class RawLayer implements Layer {
  readonly format = "raw";
  readonly file: ImageFile;
  readonly sizeBytes: number;
  readonly backingName = undefined;
  readonly backingFormat = undefined;
  readonly warnings: readonly string[] = [];

  constructor(file: ImageFile) {
    this.file = file;
    this.sizeBytes = Math.ceil(file.sizeBytes / SECTOR_BYTES) * SECTOR_BYTES;
  }

  map(offsetBytes: number, lengthBytes: number, out: Mapping): void {
    const inFile = this.file.sizeBytes - offsetBytes;
    if (inFile <= 0) return out.set(Source.Zero, lengthBytes);
    out.set(Source.Data, Math.min(lengthBytes, inFile));
    out.file = this.file;
    out.hostOffsetBytes = offsetBytes;
  }

  decompressedCluster(): Uint8Array {
    // map() never answers Compressed for a raw file.
    throw new Error("a raw file has no compressed clusters");
  }

  close(): void {
    this.file.close();
  }
}
