// The read-only qcow/qcow2 backstore: a read walks the guest range run by run (metadata from
// Layer.map()), reading data runs straight into the data area with preadv, filling zero runs,
// copying compressed runs out of the decompressed-cluster cache and sending unallocated runs
// down the backing chain. Everything that changes the disk answers WRITE PROTECTED.
import { SystemCallError } from "../../src/libc/errno.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { BackstoreError, type Backstore, type BackstoreCapabilities, type LbaStatusExtent } from "../types.ts";
import { makeIovecScratch } from "./image-file.ts";
import { Mapping, Source, type Layer } from "./layer.ts";

/** GET LBA STATUS looks at most this far ahead for the end of an extent. */
export const LBA_STATUS_SCAN_BYTES_MAX = 1024 * 1024 * 1024;

export class Qcow2Backstore implements Backstore {
  readonly kind = "qcow2";
  readonly description: string;
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities = {
    readOnly: true,
    unmap: false,
    unmapReadsZeroes: false,
    lbaStatus: true,
    volatileCache: false,
  };
  /** Things the operator should hear about at open (a smaller dev_size, a corrupt bit). */
  readonly warnings: readonly string[];
  readonly layers: readonly Layer[];
  readonly #mappings: Mapping[];
  readonly #iovecs = makeIovecScratch();

  constructor(layers: readonly Layer[], sizeBytes: number, description: string, warnings: readonly string[]) {
    this.layers = layers;
    this.sizeBytes = sizeBytes;
    this.description = description;
    this.warnings = warnings;
    this.#mappings = layers.map(() => new Mapping());
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    try {
      this.#readLayer(0, offsetBytes, lengthBytes, target, targetStartBytes);
    } catch (error) {
      if (error instanceof SystemCallError) throw new BackstoreError("read", offsetBytes, `${this.description}: ${error.message}`);
      throw error;
    }
  }

  write(offsetBytes: number): void {
    throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only`);
  }

  flush(): void {}

  unmap(offsetBytes: number): void {
    throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only`);
  }

  writeZeroes(offsetBytes: number): void {
    throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only`);
  }

  /** Mapped where some image of the chain holds data (plain or compressed); zeros and holes are not. */
  lbaStatus(offsetBytes: number): LbaStatusExtent {
    const limit = Math.min(this.sizeBytes, offsetBytes + LBA_STATUS_SCAN_BYTES_MAX);
    const mapped = this.#allocatedRun(0, offsetBytes, limit - offsetBytes);
    let end = offsetBytes + mapped.lengthBytes;
    while (end < limit) {
      const next = this.#allocatedRun(0, end, limit - end);
      if (next.mapped !== mapped.mapped) break;
      end += next.lengthBytes;
    }
    return { mapped: mapped.mapped, lengthBytes: end - offsetBytes };
  }

  close(): void {
    for (const layer of this.layers) layer.close();
  }

  #readLayer(depth: number, offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    const layer = this.layers[depth]!;
    const mapping = this.#mappings[depth]!;
    const inLayer = Math.max(0, Math.min(lengthBytes, layer.sizeBytes - offsetBytes));
    let done = 0;
    while (done < inLayer) {
      const position = offsetBytes + done;
      layer.map(position, inLayer - done, mapping);
      const length = mapping.lengthBytes;
      switch (mapping.source) {
        case Source.Data:
          mapping.file!.readIntoSegments(target, targetStartBytes + done, length, mapping.hostOffsetBytes, position, this.#iovecs);
          break;
        case Source.Zero:
          target.fill(0, targetStartBytes + done, length);
          break;
        case Source.Backing:
          if (depth + 1 < this.layers.length) this.#readLayer(depth + 1, position, length, target, targetStartBytes + done);
          else target.fill(0, targetStartBytes + done, length);
          break;
        case Source.Compressed: {
          const cluster = layer.decompressedCluster(mapping, position);
          const start = mapping.offsetInClusterBytes;
          target.copyFrom(cluster.subarray(start, start + length), targetStartBytes + done);
          break;
        }
      }
      done += length;
    }
    // Past the end of a (smaller) backing image the overlay reads zeros.
    if (inLayer < lengthBytes) target.fill(0, targetStartBytes + inLayer, lengthBytes - inLayer);
  }

  /** Whether the run at `offsetBytes` holds data somewhere in the chain from `depth` down, and how long it is. */
  #allocatedRun(depth: number, offsetBytes: number, lengthBytes: number): LbaStatusExtent {
    const layer = this.layers[depth];
    if (layer === undefined || offsetBytes >= layer.sizeBytes) return { mapped: false, lengthBytes };
    const mapping = this.#mappings[depth]!;
    layer.map(offsetBytes, Math.min(lengthBytes, layer.sizeBytes - offsetBytes), mapping);
    switch (mapping.source) {
      case Source.Data:
      case Source.Compressed:
        return { mapped: true, lengthBytes: mapping.lengthBytes };
      case Source.Zero:
        return { mapped: false, lengthBytes: mapping.lengthBytes };
      case Source.Backing:
        return this.#allocatedRun(depth + 1, offsetBytes, mapping.lengthBytes);
    }
  }
}
