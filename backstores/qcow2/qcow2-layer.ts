// A qcow2 image (version 2 or 3) of a chain: open-time parsing and checks, then the metadata
// path of a read — L1 entry, L2 slice from the cache, classification, contiguous run — which
// ends in a Mapping. Guest data is read by the backstore, never here.
import { BackstoreError } from "../types.ts";
import { Subcluster, entryHostOffset, scanRun, type L2Geometry, type Run } from "./classify.ts";
import { CompressedClusterReader, DECOMPRESSED_CACHE_BYTES_DEFAULT, inflateCluster, zstdCluster } from "./compressed.ts";
import { ImageRefusedError } from "./errors.ts";
import { parseExtensions, readBackingName, type Qcow2Extensions } from "./extensions.ts";
import { hex, NUMBER_LIMIT, viewOf, wordsToNumber } from "./fields.ts";
import * as h from "./header.ts";
import type { ImageFile } from "./image-file.ts";
import { L2_SLICE_BYTES, L2Cache, defaultL2CacheBytes } from "./l2-cache.ts";
import { Mapping, Source, type Layer } from "./layer.ts";
import { findSnapshot, readSnapshotTable, type Qcow2Snapshot } from "./snapshots.ts";

const SECTOR_BYTES = 512;
/** A compressed descriptor counts 512-byte sectors; its size field holds cluster_bits - 8 bits. */
const COMPRESSED_SECTOR_BITS = 8;

export interface LayerCacheOptions {
  /** L2 cache budget of this image; default: the whole disk's tables, at most 32 MiB. */
  l2CacheBytes?: number;
  /** Decompressed-cluster cache budget of this image. */
  decompressedCacheBytes?: number;
}

export interface Qcow2OpenOptions extends LayerCacheOptions {
  /** Serve this internal snapshot (by ID, then by name) instead of the active state. */
  snapshot?: string;
  /** Opens the external data file named by the image (name resolution is the chain's job). */
  openDataFile: (name: string) => ImageFile;
}

interface Qcow2Geometry extends L2Geometry {
  l2Entries: number;
  sliceBytes: number;
  entriesPerSlice: number;
  bytesPerL1Entry: number;
}

export class Qcow2Layer implements Layer {
  readonly format = "qcow2";
  readonly file: ImageFile;
  readonly header: h.Qcow2Header;
  readonly extensions: Qcow2Extensions;
  readonly snapshots: readonly Qcow2Snapshot[];
  readonly snapshot: Qcow2Snapshot | undefined;
  readonly sizeBytes: number;
  readonly backingName: string | undefined;
  readonly backingFormat: string | undefined;
  readonly dataFile: ImageFile | undefined;
  readonly warnings: string[] = [];
  readonly l2Cache: L2Cache;
  readonly geometry: Qcow2Geometry;
  readonly #l1: DataView;
  readonly #l1Entries: number;
  readonly #compressed: CompressedClusterReader;
  readonly #run: Run = { type: Subcluster.UnallocatedPlain, subclusters: 0, hi: 0, lo: 0 };

  constructor(file: ImageFile, options: Qcow2OpenOptions) {
    this.file = file;
    const fixed = new Uint8Array(h.HEADER_READ_BYTES);
    file.readAt(fixed, 0);
    const header = h.parseQcow2Header(file.path, fixed);
    const cluster0 = new Uint8Array(Math.min(header.clusterBytes, file.sizeBytes));
    file.readAt(cluster0, 0);
    this.extensions = parseExtensions(file.path, header, cluster0);
    h.checkQcow2Header(file.path, header, fixed, (kind, bit) => this.extensions.featureNames.get(`${kind}:${bit}`));
    this.header = header;
    this.backingName = readBackingName(file.path, header, cluster0);
    this.backingFormat = this.extensions.backingFormat;
    this.snapshots = readSnapshotTable(file, header);
    this.snapshot = options.snapshot === undefined ? undefined : this.#pickSnapshot(options.snapshot);
    const sizeExact = this.snapshot?.diskSizeExact ?? header.sizeExact;
    if (sizeExact >= BigInt(NUMBER_LIMIT)) this.#refuse(`snapshot disk size ${sizeExact} exceeds the 2^53-byte limit of this reader`);
    // QEMU counts the disk in 512-byte sectors (bs->total_sectors = size / 512).
    this.sizeBytes = Math.floor(Number(sizeExact) / SECTOR_BYTES) * SECTOR_BYTES;
    this.geometry = makeGeometry(header, this.#hasDataFile());
    this.#l1Entries = this.#l1EntriesToRead(sizeExact);
    const l1Bytes = new Uint8Array(this.#l1Entries * h.L1_ENTRY_BYTES);
    file.readExactOrRefuse(l1Bytes, this.#l1Offset(), this.snapshot === undefined ? "L1 table" : "snapshot L1 table");
    this.#l1 = viewOf(l1Bytes);
    this.dataFile = this.#openDataFile(options);
    const l2Budget = options.l2CacheBytes ?? defaultL2CacheBytes(this.sizeBytes, header.clusterBytes, this.geometry.entryBytes);
    this.l2Cache = new L2Cache(file, this.geometry.sliceBytes, l2Budget);
    const decompress = header.compressionType === "zstd" ? zstdCluster : inflateCluster;
    // A descriptor's sector count has cluster_bits - 8 bits: at most two clusters of input.
    this.#compressed = new CompressedClusterReader(file, header.clusterBytes, 2 * header.clusterBytes, decompress, options.decompressedCacheBytes ?? DECOMPRESSED_CACHE_BYTES_DEFAULT);
    if ((header.incompatibleFeatures & h.INCOMPAT_CORRUPT) !== 0n) this.warnings.push(`${file.path}: image is marked corrupt; serving it read-only`);
  }

  map(offsetBytes: number, lengthBytes: number, out: Mapping): void {
    const g = this.geometry;
    const l1Index = Math.floor(offsetBytes / g.bytesPerL1Entry);
    const toTableEnd = (l1Index + 1) * g.bytesPerL1Entry - offsetBytes;
    if (l1Index >= this.#l1Entries) return out.set(Source.Backing, Math.min(lengthBytes, toTableEnd));
    const l1Hi = this.#l1.getUint32(l1Index * h.L1_ENTRY_BYTES, false);
    const l1Lo = this.#l1.getUint32(l1Index * h.L1_ENTRY_BYTES + 4, false);
    const l2Offset = entryHostOffset(l1Hi, l1Lo);
    if (l2Offset === 0) return out.set(Source.Backing, Math.min(lengthBytes, toTableEnd));
    if (l2Offset % g.clusterBytes !== 0) this.#mediumError(offsetBytes, `L2 table offset ${hex(l2Offset)} unaligned (L1 index ${l1Index})`);
    const clusterIndex = Math.floor(offsetBytes / g.clusterBytes);
    const offsetInCluster = offsetBytes - clusterIndex * g.clusterBytes;
    const l2Index = clusterIndex - l1Index * g.l2Entries;
    const sliceIndex = Math.floor(l2Index / g.entriesPerSlice);
    const entryInSlice = l2Index - sliceIndex * g.entriesPerSlice;
    const slice = this.l2Cache.get(l2Offset + sliceIndex * g.sliceBytes, offsetBytes);
    const subclusterIndex = Math.floor(offsetInCluster / g.subclusterBytes);
    const entriesMax = Math.min(Math.ceil((offsetInCluster + lengthBytes) / g.clusterBytes), g.entriesPerSlice - entryInSlice);
    const run = this.#run;
    scanRun(g, slice.view, entryInSlice, subclusterIndex, entriesMax, run);
    const runBytes = Math.min(lengthBytes, (subclusterIndex + run.subclusters) * g.subclusterBytes - offsetInCluster);
    const entryOffset = l2Offset + l2Index * g.entryBytes; // for messages only
    switch (run.type) {
      case Subcluster.Invalid:
        return this.#entryError(offsetBytes, "invalid cluster entry found", entryOffset);
      case Subcluster.ZeroPlain:
        if (this.header.version < 3) this.#entryError(offsetBytes, "zero cluster entry found in pre-v3 image", entryOffset);
        return out.set(Source.Zero, runBytes);
      case Subcluster.UnallocatedPlain:
        return out.set(Source.Backing, runBytes);
      case Subcluster.Normal:
      case Subcluster.ZeroAlloc:
      case Subcluster.UnallocatedAlloc:
        return this.#mapAllocated(run, offsetBytes, offsetInCluster, runBytes, entryOffset, out);
      case Subcluster.Compressed:
        return this.#mapCompressed(run, offsetBytes, offsetInCluster, lengthBytes, entryOffset, out);
    }
  }

  decompressedCluster(mapping: Mapping, guestOffsetBytes: number): Uint8Array {
    return this.#compressed.cluster(mapping.compressedOffsetBytes, mapping.compressedBytes, guestOffsetBytes);
  }

  close(): void {
    this.l2Cache.clear();
    this.#compressed.clear();
    this.dataFile?.close();
    this.file.close();
  }

  /** `entryOffset`: the file offset of the L2 entry, for messages. */
  #mapAllocated(run: Run, offsetBytes: number, offsetInCluster: number, runBytes: number, entryOffset: number, out: Mapping): void {
    const hostCluster = entryHostOffset(run.hi, run.lo);
    // QEMU 7.2 fails both zero forms in a v2 image, entryOffset the flag does not exist.
    if (run.type === Subcluster.ZeroAlloc && this.header.version < 3) this.#entryError(offsetBytes, "zero cluster entry found in pre-v3 image", entryOffset);
    if (hostCluster % this.geometry.clusterBytes !== 0) this.#entryError(offsetBytes, `cluster allocation offset ${hex(hostCluster)} unaligned`, entryOffset);
    if (run.type === Subcluster.ZeroAlloc) return out.set(Source.Zero, runBytes);
    if (run.type === Subcluster.UnallocatedAlloc) return out.set(Source.Backing, runBytes);
    out.set(Source.Data, runBytes);
    out.file = this.dataFile ?? this.file;
    out.hostOffsetBytes = hostCluster + offsetInCluster;
  }

  /** Descriptor layout: qcow2.rst "Compressed Clusters Descriptor". */
  #mapCompressed(run: Run, offsetBytes: number, offsetInCluster: number, lengthBytes: number, entryOffset: number, out: Mapping): void {
    const g = this.geometry;
    if (this.dataFile !== undefined) this.#entryError(offsetBytes, "compressed cluster entry found in image with external data file", entryOffset);
    const offsetBits = 62 - (g.clusterBits - COMPRESSED_SECTOR_BITS);
    const hiOffsetBits = offsetBits - 32;
    const hostOffset = wordsToNumber(run.hi & (2 ** hiOffsetBits - 1), run.lo);
    const sectors = ((run.hi >>> hiOffsetBits) & (2 ** (g.clusterBits - COMPRESSED_SECTOR_BITS) - 1)) + 1;
    if (hostOffset === undefined) this.#entryError(offsetBytes, "compressed cluster offset past 2^53", entryOffset);
    out.set(Source.Compressed, Math.min(lengthBytes, g.clusterBytes - offsetInCluster));
    out.compressedOffsetBytes = hostOffset!;
    out.compressedBytes = sectors * SECTOR_BYTES - (run.lo & (SECTOR_BYTES - 1));
    out.offsetInClusterBytes = offsetInCluster;
  }

  #hasDataFile(): boolean {
    return (this.header.incompatibleFeatures & h.INCOMPAT_DATA_FILE) !== 0n;
  }

  #pickSnapshot(idOrName: string): Qcow2Snapshot {
    const snapshot = findSnapshot(this.snapshots, idOrName);
    if (snapshot === undefined) {
      const known = this.snapshots.map((entry) => entry.name).join(", ");
      this.#refuse(`no snapshot '${idOrName}' (${known === "" ? "the image has none" : `snapshots: ${known}`})`);
    }
    const what = `snapshot '${snapshot!.name}'`;
    if (!h.tableOffsetValid(snapshot!.l1TableOffset, BigInt(snapshot!.l1Size), BigInt(h.L1_ENTRY_BYTES), this.header.clusterBytes)) {
      this.#refuse(`${what}: L1 table offset ${hex(snapshot!.l1TableOffset)} invalid`);
    }
    if (snapshot!.l1Size > h.L1_TABLE_BYTES_MAX / h.L1_ENTRY_BYTES) this.#refuse(`${what}: L1 table too large (${snapshot!.l1Size} entries)`);
    return snapshot!;
  }

  /** Only the entries that map the disk are read (the rest of a larger L1 is VM state). */
  #l1EntriesToRead(sizeExact: bigint): number {
    const l1Size = this.snapshot?.l1Size ?? this.header.l1Size;
    const needed = h.l1EntriesFor(sizeExact, this.header.clusterBits, this.header.extendedL2);
    return Number(needed < BigInt(l1Size) ? needed : BigInt(l1Size));
  }

  #l1Offset(): number {
    if (this.snapshot === undefined) return this.header.l1TableOffset;
    const offset = this.snapshot.l1TableOffset;
    if (offset >= BigInt(NUMBER_LIMIT)) this.#refuse(`snapshot L1 table offset ${hex(offset)} exceeds the 2^53-byte limit of this reader`);
    return Number(offset);
  }

  #openDataFile(options: Qcow2OpenOptions): ImageFile | undefined {
    const raw = (this.header.autoclearFeatures & h.AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    if (!this.#hasDataFile()) {
      if (raw) this.#refuse("data-file-raw requires a data file (autoclear bit 1 without incompatible bit 2)");
      return undefined;
    }
    const name = this.extensions.dataFileName;
    if (name === undefined || name === "") this.#refuse("the image needs an external data file but names none (no data file header extension)");
    return options.openDataFile(name!);
  }

  #refuse(reason: string): never {
    throw new ImageRefusedError(this.file.path, reason);
  }

  /** MEDIUM ERROR naming the L2 entry at file offset `entryOffset`, like QEMU's corruption messages. */
  #entryError(offsetBytes: number, reason: string, entryOffset: number): never {
    const g = this.geometry;
    const tableOffset = entryOffset - (entryOffset % g.clusterBytes);
    const index = (entryOffset - tableOffset) / g.entryBytes;
    this.#mediumError(offsetBytes, `${reason} (L2 offset ${hex(tableOffset)}, L2 index ${index})`);
  }

  #mediumError(offsetBytes: number, reason: string): never {
    throw new BackstoreError("read", offsetBytes, `${this.file.path}: ${reason}`);
  }
}

function makeGeometry(header: h.Qcow2Header, hasDataFile: boolean): Qcow2Geometry {
  const entryBytes = header.extendedL2 ? 16 : 8;
  const subclustersPerCluster = header.extendedL2 ? h.SUBCLUSTERS_PER_CLUSTER : 1;
  const sliceBytes = Math.min(L2_SLICE_BYTES, header.clusterBytes);
  const l2Entries = header.clusterBytes / entryBytes;
  return {
    clusterBits: header.clusterBits,
    clusterBytes: header.clusterBytes,
    entryBytes,
    extendedL2: header.extendedL2,
    subclustersPerCluster,
    subclusterBytes: header.clusterBytes / subclustersPerCluster,
    hasDataFile,
    l2Entries,
    sliceBytes,
    entriesPerSlice: sliceBytes / entryBytes,
    bytesPerL1Entry: l2Entries * header.clusterBytes,
  };
}
