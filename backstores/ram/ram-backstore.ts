// A sparse RAM disk: memory is taken in chunks on first write; reads of untouched chunks return
// zeros without allocating; UNMAP and zero writes of whole chunks give memory back.
import type { DataSegments } from "../../src/ring/data-segments.ts";
import type { Backstore, BackstoreCapabilities, LbaStatusExtent } from "../types.ts";

export const RAM_CHUNK_BYTES = 1024 * 1024;

export interface RamBackstoreOptions {
  label?: string;
}

export class RamBackstore implements Backstore {
  readonly kind = "ram";
  readonly description: string;
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities = {
    readOnly: false,
    unmap: true,
    unmapReadsZeroes: true,
    lbaStatus: true,
    volatileCache: false,
  };
  readonly #chunks = new Map<number, Uint8Array>();

  constructor(sizeBytes: number, options: RamBackstoreOptions = {}) {
    this.sizeBytes = sizeBytes;
    this.description = options.label === undefined ? "ram" : `ram/${options.label}`;
  }

  get allocatedBytes(): number {
    return this.#chunks.size * RAM_CHUNK_BYTES;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    this.#eachChunk(offsetBytes, lengthBytes, (chunkIndex, inChunk, length, done) => {
      const chunk = this.#chunks.get(chunkIndex);
      if (chunk === undefined) target.fill(0, targetStartBytes + done, length);
      else target.copyFrom(chunk.subarray(inChunk, inChunk + length), targetStartBytes + done);
    });
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number): void {
    this.#eachChunk(offsetBytes, lengthBytes, (chunkIndex, inChunk, length, done) => {
      let chunk = this.#chunks.get(chunkIndex);
      if (chunk === undefined) {
        chunk = new Uint8Array(RAM_CHUNK_BYTES);
        this.#chunks.set(chunkIndex, chunk);
      }
      source.copyTo(chunk.subarray(inChunk, inChunk + length), sourceStartBytes + done);
    });
  }

  flush(): void {}

  unmap(offsetBytes: number, lengthBytes: number): void {
    this.writeZeroes(offsetBytes, lengthBytes);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number): void {
    this.#eachChunk(offsetBytes, lengthBytes, (chunkIndex, inChunk, length) => {
      const chunk = this.#chunks.get(chunkIndex);
      if (chunk === undefined) return;
      if (length === RAM_CHUNK_BYTES) this.#chunks.delete(chunkIndex);
      else chunk.fill(0, inChunk, inChunk + length);
    });
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    const firstChunk = Math.floor(offsetBytes / RAM_CHUNK_BYTES);
    const mapped = this.#chunks.has(firstChunk);
    let chunkIndex = firstChunk + 1;
    const lastChunk = Math.ceil(this.sizeBytes / RAM_CHUNK_BYTES);
    while (chunkIndex < lastChunk && this.#chunks.has(chunkIndex) === mapped) chunkIndex += 1;
    const end = Math.min(chunkIndex * RAM_CHUNK_BYTES, this.sizeBytes);
    return { mapped, lengthBytes: end - offsetBytes };
  }

  close(): void {
    this.#chunks.clear();
  }

  #eachChunk(
    offsetBytes: number,
    lengthBytes: number,
    visit: (chunkIndex: number, offsetInChunkBytes: number, lengthBytes: number, doneBytes: number) => void,
  ): void {
    let done = 0;
    while (done < lengthBytes) {
      const position = offsetBytes + done;
      const chunkIndex = Math.floor(position / RAM_CHUNK_BYTES);
      const inChunk = position - chunkIndex * RAM_CHUNK_BYTES;
      const length = Math.min(RAM_CHUNK_BYTES - inChunk, lengthBytes - done);
      visit(chunkIndex, inChunk, length, done);
      done += length;
    }
  }
}
