// qcow version 1 (QEMU's block/qcow.c): a 48-byte header, an L1 table sized from the disk size,
// L2 tables of 2^l2_bits entries holding plain host offsets, bit 63 marking a compressed
// cluster whose exact byte length sits above the offset. No zero clusters, no feature bits.
import { BackstoreError } from "../types.ts";
import { CompressedClusterReader, DECOMPRESSED_CACHE_BYTES_DEFAULT, inflateCluster } from "./compressed.ts";
import { ImageRefusedError } from "./errors.ts";
import { cString, BACKING_NAME_BYTES_MAX } from "./extensions.ts";
import { hex, NUMBER_LIMIT, u32be, u64beBig, u64beNumber, u8, viewOf, wordsToNumber } from "./fields.ts";
import { L1_TABLE_BYTES_MAX, QCOW_MAGIC } from "./header.ts";
import type { ImageFile } from "./image-file.ts";
import { L2_SLICE_BYTES, L2Cache, defaultL2CacheBytes } from "./l2-cache.ts";
import { Mapping, Source, type Layer } from "./layer.ts";
import type { LayerCacheOptions } from "./qcow2-layer.ts";

export const QCOW1_HEADER_BYTES = 48;
const QCOW1_VERSION = 1;
const CLUSTER_BITS_MIN = 9;
const CLUSTER_BITS_MAX = 16;
/** L2 tables of 512 B .. 64 KiB: 2^6 .. 2^13 eight-byte entries. */
const L2_BITS_MIN = 6;
const L2_BITS_MAX = 13;
const CRYPT_AES = 1;
const ENTRY_BYTES = 8;
const SECTOR_BYTES = 512;
const HI_COMPRESSED = 0x8000_0000;

export interface Qcow1Header {
  sizeExact: bigint;
  clusterBits: number;
  l2Bits: number;
  cryptMethod: number;
  l1TableOffset: number;
  l1Entries: number;
  backingFileOffset: bigint;
  backingFileNameBytes: number;
}

/** Parses and checks the header in the order of QEMU's qcow_open(). */
export function parseQcow1Header(path: string, bytes: Uint8Array): Qcow1Header {
  const refuse = (reason: string): never => {
    throw new ImageRefusedError(path, reason);
  };
  const view = viewOf(bytes);
  if (u32be(view, 0) !== QCOW_MAGIC) refuse("not in qcow format (bad magic)");
  const version = u32be(view, 4);
  if (version !== QCOW1_VERSION) refuse(`qcow (v1) does not support qcow version ${version}`);
  const sizeExact = u64beBig(view, 24);
  if (sizeExact <= 1n) refuse("image size is too small (must be at least 2 bytes)");
  const clusterBits = u8(bytes, 32);
  const l2Bits = u8(bytes, 33);
  if (clusterBits < CLUSTER_BITS_MIN || clusterBits > CLUSTER_BITS_MAX) refuse(`cluster size must be between 512 and 64k (cluster_bits ${clusterBits})`);
  if (l2Bits < L2_BITS_MIN || l2Bits > L2_BITS_MAX) refuse(`L2 table size must be between 512 and 64k (l2_bits ${l2Bits})`);
  const cryptMethod = u32be(view, 36);
  if (cryptMethod === CRYPT_AES) refuse("encrypted image (legacy AES) is not supported");
  if (cryptMethod !== 0) refuse(`invalid encryption method in qcow header (${cryptMethod})`);
  if (sizeExact >= BigInt(NUMBER_LIMIT)) refuse(`virtual size ${sizeExact} exceeds the 2^53-byte limit of this reader`);
  const shift = BigInt(clusterBits + l2Bits);
  const l1Entries = Number((sizeExact + (1n << shift) - 1n) >> shift);
  if (l1Entries * ENTRY_BYTES > L1_TABLE_BYTES_MAX) refuse(`L1 table of ${l1Entries} entries exceeds the ${L1_TABLE_BYTES_MAX}-byte limit of this reader`);
  const l1TableOffset = u64beNumber(view, 40);
  if (l1TableOffset === undefined) refuse(`L1 table offset ${hex(u64beBig(view, 40))} exceeds the 2^53-byte limit of this reader`);
  return {
    sizeExact,
    clusterBits,
    l2Bits,
    cryptMethod,
    l1TableOffset: l1TableOffset!,
    l1Entries,
    backingFileOffset: u64beBig(view, 8),
    backingFileNameBytes: u32be(view, 16),
  };
}

export class Qcow1Layer implements Layer {
  readonly format = "qcow";
  readonly file: ImageFile;
  readonly header: Qcow1Header;
  readonly sizeBytes: number;
  readonly backingName: string | undefined;
  /** qcow v1 never names the backing format: it is probed. */
  readonly backingFormat = undefined;
  readonly warnings: readonly string[] = [];
  readonly clusterBytes: number;
  readonly l2Cache: L2Cache;
  readonly #l2Entries: number;
  readonly #entriesPerSlice: number;
  readonly #l1: DataView;
  readonly #compressed: CompressedClusterReader;

  constructor(file: ImageFile, options: LayerCacheOptions) {
    this.file = file;
    const fixed = new Uint8Array(QCOW1_HEADER_BYTES);
    file.readExactOrRefuse(fixed, 0, "qcow header");
    const header = parseQcow1Header(file.path, fixed);
    this.header = header;
    this.clusterBytes = 2 ** header.clusterBits;
    this.sizeBytes = Math.floor(Number(header.sizeExact) / SECTOR_BYTES) * SECTOR_BYTES;
    this.#l2Entries = 2 ** header.l2Bits;
    const l1Bytes = new Uint8Array(header.l1Entries * ENTRY_BYTES);
    file.readExactOrRefuse(l1Bytes, header.l1TableOffset, "L1 table");
    this.#l1 = viewOf(l1Bytes);
    this.backingName = this.#readBackingName();
    const sliceBytes = Math.min(L2_SLICE_BYTES, this.#l2Entries * ENTRY_BYTES);
    this.#entriesPerSlice = sliceBytes / ENTRY_BYTES;
    const budget = options.l2CacheBytes ?? defaultL2CacheBytes(this.sizeBytes, this.clusterBytes, ENTRY_BYTES);
    this.l2Cache = new L2Cache(file, sliceBytes, budget);
    // The byte count field has cluster_bits bits: the input is always under one cluster.
    this.#compressed = new CompressedClusterReader(file, this.clusterBytes, this.clusterBytes, inflateCluster, options.decompressedCacheBytes ?? DECOMPRESSED_CACHE_BYTES_DEFAULT);
  }

  map(offsetBytes: number, lengthBytes: number, out: Mapping): void {
    const clusterIndex = Math.floor(offsetBytes / this.clusterBytes);
    const l1Index = Math.floor(clusterIndex / this.#l2Entries);
    const l2Index = clusterIndex - l1Index * this.#l2Entries;
    const offsetInCluster = offsetBytes - clusterIndex * this.clusterBytes;
    const toTableEnd = (l1Index + 1) * this.#l2Entries * this.clusterBytes - offsetBytes;
    const l2Offset = wordsToNumber(this.#l1.getUint32(l1Index * ENTRY_BYTES, false), this.#l1.getUint32(l1Index * ENTRY_BYTES + 4, false));
    if (l2Offset === 0) return out.set(Source.Backing, Math.min(lengthBytes, toTableEnd));
    if (l2Offset === undefined) this.#mediumError(offsetBytes, `L2 table offset past 2^53 (L1 index ${l1Index})`);
    const sliceIndex = Math.floor(l2Index / this.#entriesPerSlice);
    const entryInSlice = l2Index - sliceIndex * this.#entriesPerSlice;
    const slice = this.l2Cache.get(l2Offset! + sliceIndex * this.#entriesPerSlice * ENTRY_BYTES, offsetBytes).view;
    const entriesMax = Math.min(Math.ceil((offsetInCluster + lengthBytes) / this.clusterBytes), this.#entriesPerSlice - entryInSlice);
    const hi = slice.getUint32(entryInSlice * ENTRY_BYTES, false);
    const lo = slice.getUint32(entryInSlice * ENTRY_BYTES + 4, false);
    if ((hi & HI_COMPRESSED) !== 0) return this.#mapCompressed(hi, lo, offsetBytes, offsetInCluster, lengthBytes, out);
    const hostOffset = wordsToNumber(hi, lo);
    const clusters = countContiguous(slice, entryInSlice, entriesMax, hostOffset, this.clusterBytes);
    const runBytes = Math.min(lengthBytes, clusters * this.clusterBytes - offsetInCluster);
    if (hostOffset === 0) return out.set(Source.Backing, runBytes);
    if (hostOffset === undefined) this.#mediumError(offsetBytes, `cluster offset past 2^53 (L2 index ${l2Index})`);
    if (hostOffset! % SECTOR_BYTES !== 0) this.#mediumError(offsetBytes, `cluster offset ${hex(hostOffset!)} not sector aligned (L2 index ${l2Index})`);
    out.set(Source.Data, runBytes);
    out.file = this.file;
    out.hostOffsetBytes = hostOffset! + offsetInCluster;
  }

  decompressedCluster(mapping: Mapping, guestOffsetBytes: number): Uint8Array {
    return this.#compressed.cluster(mapping.compressedOffsetBytes, mapping.compressedBytes, guestOffsetBytes);
  }

  close(): void {
    this.l2Cache.clear();
    this.#compressed.clear();
    this.file.close();
  }

  /** `coffset = e & ((1 << (63 - cluster_bits)) - 1)`, `csize = (e >> (63 - cluster_bits)) & (cluster_size - 1)`. */
  #mapCompressed(hi: number, lo: number, offsetBytes: number, offsetInCluster: number, lengthBytes: number, out: Mapping): void {
    const hiOffsetBits = 63 - this.header.clusterBits - 32;
    const hostOffset = wordsToNumber(hi & (2 ** hiOffsetBits - 1), lo);
    if (hostOffset === undefined) this.#mediumError(offsetBytes, "compressed cluster offset past 2^53");
    out.set(Source.Compressed, Math.min(lengthBytes, this.clusterBytes - offsetInCluster));
    out.compressedOffsetBytes = hostOffset!;
    out.compressedBytes = (hi >>> hiOffsetBits) & (this.clusterBytes - 1);
    out.offsetInClusterBytes = offsetInCluster;
  }

  #readBackingName(): string | undefined {
    if (this.header.backingFileOffset === 0n) return undefined;
    const length = this.header.backingFileNameBytes;
    if (length > BACKING_NAME_BYTES_MAX) throw new ImageRefusedError(this.file.path, `backing file name too long (${length} bytes)`);
    if (this.header.backingFileOffset >= BigInt(NUMBER_LIMIT)) throw new ImageRefusedError(this.file.path, "backing file name lies past the end of the file");
    const name = new Uint8Array(length);
    this.file.readExactOrRefuse(name, Number(this.header.backingFileOffset), "backing file name");
    const text = cString(name);
    return text === "" ? undefined : text;
  }

  #mediumError(offsetBytes: number, reason: string): never {
    throw new BackstoreError("read", offsetBytes, `${this.file.path}: ${reason}`);
  }
}

/** Entries from `first` that continue the run of `hostOffset` (0: unallocated; else consecutive clusters). */
function countContiguous(slice: DataView, first: number, entriesMax: number, hostOffset: number | undefined, clusterBytes: number): number {
  if (hostOffset === undefined) return 1;
  let count = 1;
  for (; count < entriesMax; count += 1) {
    const hi = slice.getUint32((first + count) * ENTRY_BYTES, false);
    const lo = slice.getUint32((first + count) * ENTRY_BYTES + 4, false);
    if ((hi & HI_COMPRESSED) !== 0) break;
    const next = wordsToNumber(hi, lo);
    const expected = hostOffset === 0 ? 0 : hostOffset + count * clusterBytes;
    if (next !== expected) break;
  }
  return count;
}
