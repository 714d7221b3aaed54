// The qcow2 header (docs/interop/qcow2.rst "Header"), parsed and checked in the order of QEMU's
// qcow2_do_open() so a broken image is refused for the same reason, with a message naming it.
// Header extensions and the backing file name live in cluster 0 and are parsed in extensions.ts.
import { ImageRefusedError } from "./errors.ts";
import { formatBytes, hex, NUMBER_LIMIT, u32be, u64beBig, u64beNumber, u8, viewOf } from "./fields.ts";

export const QCOW_MAGIC = 0x514649fb; // "QFI\xfb", shared by qcow v1 and qcow2

export const CLUSTER_BITS_MIN = 9;
export const CLUSTER_BITS_MAX = 21;
/** Extended L2 needs 32 subclusters of at least 512 bytes: 16 KiB clusters. */
export const EXTENDED_L2_CLUSTER_BITS_MIN = 14;
export const SUBCLUSTERS_PER_CLUSTER = 32;
const V2_HEADER_BYTES = 72;
export const V3_HEADER_BYTES_MIN = 104;
/** The fixed part QEMU reads: 104 bytes plus the compression type byte and padding. */
export const HEADER_READ_BYTES = 112;
const COMPRESSION_TYPE_OFFSET = 104;
const REFCOUNT_ORDER_MAX = 6;
const V2_REFCOUNT_ORDER = 4;
/** QEMU's QCOW_MAX_L1_SIZE: an L1 table of at most 32 MiB. */
export const L1_TABLE_BYTES_MAX = 32 * 1024 * 1024;
export const L1_ENTRY_BYTES = 8;
/** QEMU's QCOW_MAX_REFTABLE_SIZE: the refcount table is at most 8 MiB. */
const REFCOUNT_TABLE_BYTES_MAX = 8 * 1024 * 1024;
/** QEMU's QCOW_MAX_SNAPSHOTS. */
export const SNAPSHOTS_MAX = 65536;
export const SNAPSHOT_HEADER_BYTES = 40;
const INT64_MAX = (1n << 63n) - 1n;

export const CRYPT_NONE = 0;
export const CRYPT_AES = 1;
export const CRYPT_LUKS = 2;

// Feature bits (qcow2.rst "incompatible_features", "compatible_features", "autoclear_features").
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTENDED_L2 = 1n << 4n;
export const INCOMPAT_KNOWN =
  INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2;
export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;
export const AUTOCLEAR_BITMAPS = 1n << 0n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

export const COMPRESSION_DEFLATE = 0;
export const COMPRESSION_ZSTD = 1;
export type CompressionType = "deflate" | "zstd";

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterBytes: number;
  /** Exact virtual size as stored; `sizeBytes` is it as a number (checked below 2^53). */
  sizeExact: bigint;
  sizeBytes: number;
  backingFileOffset: number;
  backingFileNameBytes: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: bigint;
  refcountTableClusters: number;
  snapshotCount: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: CompressionType;
  extendedL2: boolean;
  /** Where header extensions stop: the backing file name, or the end of cluster 0. */
  extensionsEnd: number;
}

/** QEMU's validate_table_offset(): no int64 overflow, cluster aligned. */
export function tableOffsetValid(offset: bigint, entries: bigint, entryBytes: bigint, clusterBytes: number): boolean {
  if (entries > INT64_MAX / entryBytes) return false;
  if (INT64_MAX - entries * entryBytes < offset) return false;
  return offset % BigInt(clusterBytes) === 0n;
}

/** Guest bytes one L1 entry covers: a cluster per L2 entry. */
export function bytesPerL1Entry(clusterBits: number, extendedL2: boolean): number {
  const l2EntryBytes = extendedL2 ? 16 : 8;
  return 2 ** clusterBits * (2 ** clusterBits / l2EntryBytes);
}

/** L1 entries needed to map `sizeBytes` (QEMU's size_to_l1()). */
export function l1EntriesFor(size: bigint, clusterBits: number, extendedL2: boolean): bigint {
  const perEntry = BigInt(bytesPerL1Entry(clusterBits, extendedL2));
  return (size + perEntry - 1n) / perEntry;
}

/**
 * Parses the fixed header from the first bytes of the file (at least HEADER_READ_BYTES, zero
 * padded past the end of a short file as QEMU reads it) and refuses what QEMU refuses.
 */
export function parseQcow2Header(path: string, bytes: Uint8Array): Qcow2Header {
  const refuse = (reason: string): never => {
    throw new ImageRefusedError(path, reason);
  };
  const view = viewOf(bytes);
  if (u32be(view, 0) !== QCOW_MAGIC) refuse("not in qcow2 format (bad magic)");
  const version = u32be(view, 4);
  if (version !== 2 && version !== 3) refuse(`unsupported qcow2 version ${version}`);
  const clusterBits = u32be(view, 20);
  if (clusterBits < CLUSTER_BITS_MIN || clusterBits > CLUSTER_BITS_MAX) {
    refuse(`unsupported cluster size: 2^${clusterBits} (cluster_bits must be ${CLUSTER_BITS_MIN}..${CLUSTER_BITS_MAX})`);
  }
  const clusterBytes = 2 ** clusterBits;
  const v3 = version === 3;
  const headerLength = v3 ? u32be(view, 100) : V2_HEADER_BYTES;
  if (v3 && headerLength < V3_HEADER_BYTES_MIN) refuse(`qcow2 header too short (header_length ${headerLength} < ${V3_HEADER_BYTES_MIN})`);
  if (v3 && headerLength > clusterBytes) refuse(`qcow2 header exceeds cluster size (header_length ${headerLength} > ${clusterBytes})`);
  const backingFileOffsetExact = u64beBig(view, 8);
  if (backingFileOffsetExact > BigInt(clusterBytes)) refuse(`invalid backing file offset ${hex(backingFileOffsetExact)} (past cluster 0)`);
  const backingFileOffset = Number(backingFileOffsetExact);
  const incompatibleFeatures = v3 ? u64beBig(view, 72) : 0n;
  const header: Qcow2Header = {
    version: v3 ? 3 : 2,
    clusterBits,
    clusterBytes,
    sizeExact: u64beBig(view, 24),
    sizeBytes: 0,
    backingFileOffset,
    backingFileNameBytes: u32be(view, 16),
    cryptMethod: u32be(view, 32),
    l1Size: u32be(view, 36),
    l1TableOffset: 0,
    refcountTableOffset: u64beBig(view, 48),
    refcountTableClusters: u32be(view, 56),
    snapshotCount: u32be(view, 60),
    snapshotsOffset: 0,
    incompatibleFeatures,
    compatibleFeatures: v3 ? u64beBig(view, 80) : 0n,
    autoclearFeatures: v3 ? u64beBig(view, 88) : 0n,
    refcountOrder: v3 ? u32be(view, 96) : V2_REFCOUNT_ORDER,
    headerLength,
    compressionType: "deflate",
    extendedL2: (incompatibleFeatures & INCOMPAT_EXTENDED_L2) !== 0n,
    extensionsEnd: backingFileOffset !== 0 ? backingFileOffset : clusterBytes,
  };
  return header;
}

/**
 * The checks QEMU makes after reading the header extensions (whose feature name table names
 * unknown bits in the message): features, subclusters, refcounts, encryption, table offsets,
 * L1 size and compression type.
 */
export function checkQcow2Header(path: string, header: Qcow2Header, bytes: Uint8Array, featureName: (kind: number, bit: number) => string | undefined): void {
  const refuse = (reason: string): never => {
    throw new ImageRefusedError(path, reason);
  };
  const view = viewOf(bytes);
  const unknown = header.incompatibleFeatures & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) refuse(`unsupported qcow2 feature(s): ${describeUnknownBits(unknown, featureName)}`);
  if (header.extendedL2 && header.clusterBits < EXTENDED_L2_CLUSTER_BITS_MIN) {
    refuse(`unsupported subcluster size: ${header.clusterBytes / SUBCLUSTERS_PER_CLUSTER} (extended L2 needs clusters of at least ${formatBytes(2 ** EXTENDED_L2_CLUSTER_BITS_MIN)})`);
  }
  if (header.refcountOrder > REFCOUNT_ORDER_MAX) refuse(`reference count entry width too large (refcount_order ${header.refcountOrder}); may not exceed 64 bits`);
  if (header.cryptMethod > CRYPT_LUKS) refuse(`unsupported encryption method: ${header.cryptMethod}`);
  if (header.cryptMethod === CRYPT_AES) refuse("encrypted image (legacy AES) is not supported");
  if (header.cryptMethod === CRYPT_LUKS) refuse("encrypted image (LUKS) is not supported");
  if (header.refcountTableClusters > REFCOUNT_TABLE_BYTES_MAX / header.clusterBytes) refuse(`reference count table too large (${header.refcountTableClusters} clusters)`);
  if (header.refcountTableClusters === 0) refuse("image does not contain a reference count table");
  if (!tableOffsetValid(header.refcountTableOffset, BigInt(header.refcountTableClusters), BigInt(header.clusterBytes), header.clusterBytes)) {
    refuse(`invalid reference count table offset ${hex(header.refcountTableOffset)}`);
  }
  if (header.snapshotCount > SNAPSHOTS_MAX) refuse(`too many snapshots (${header.snapshotCount} > ${SNAPSHOTS_MAX})`);
  const snapshotsOffset = u64beBig(view, 64);
  if (!tableOffsetValid(snapshotsOffset, BigInt(header.snapshotCount), BigInt(SNAPSHOT_HEADER_BYTES), header.clusterBytes)) {
    refuse(`invalid snapshot table offset ${hex(snapshotsOffset)}`);
  }
  header.snapshotsOffset = Number(snapshotsOffset); // below INT64_MAX; past 2^53 it lies past any file and is refused when read
  if (header.snapshotCount > 0 && snapshotsOffset >= BigInt(NUMBER_LIMIT)) refuse(`snapshot table offset ${hex(snapshotsOffset)} exceeds the 2^53-byte limit of this reader`);
  checkL1(header, view, refuse);
  checkCompressionType(header, bytes, refuse);
}

function checkL1(header: Qcow2Header, view: DataView, refuse: (reason: string) => never): void {
  if (header.l1Size > L1_TABLE_BYTES_MAX / L1_ENTRY_BYTES) refuse(`active L1 table too large (${header.l1Size} entries, at most ${L1_TABLE_BYTES_MAX / L1_ENTRY_BYTES})`);
  if (header.sizeExact >= BigInt(NUMBER_LIMIT)) refuse(`virtual size ${header.sizeExact} exceeds the 2^53-byte limit of this reader`);
  header.sizeBytes = Number(header.sizeExact);
  const needed = l1EntriesFor(header.sizeExact, header.clusterBits, header.extendedL2);
  if (BigInt(header.l1Size) < needed) refuse(`L1 table is too small (${header.l1Size} entries, the virtual size needs ${needed})`);
  const l1TableOffset = u64beBig(view, 40);
  if (!tableOffsetValid(l1TableOffset, BigInt(header.l1Size), BigInt(L1_ENTRY_BYTES), header.clusterBytes)) refuse(`invalid L1 table offset ${hex(l1TableOffset)}`);
  const l1TableOffsetBytes = u64beNumber(view, 40);
  if (l1TableOffsetBytes === undefined) refuse(`L1 table offset ${hex(l1TableOffset)} exceeds the 2^53-byte limit of this reader`);
  header.l1TableOffset = l1TableOffsetBytes!;
}

/** QEMU's validate_compression_type(): the byte at 104 and incompatible bit 3 must agree. */
function checkCompressionType(header: Qcow2Header, bytes: Uint8Array, refuse: (reason: string) => never): void {
  const type = header.headerLength > COMPRESSION_TYPE_OFFSET ? u8(bytes, COMPRESSION_TYPE_OFFSET) : COMPRESSION_DEFLATE;
  const bitSet = (header.incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n;
  if (type !== COMPRESSION_DEFLATE && type !== COMPRESSION_ZSTD) refuse(`unknown compression type: ${type}`);
  if (type === COMPRESSION_DEFLATE && bitSet) refuse("compression type incompatible feature bit must not be set for deflate");
  if (type !== COMPRESSION_DEFLATE && !bitSet) refuse("compression type incompatible feature bit is not set");
  header.compressionType = type === COMPRESSION_ZSTD ? "zstd" : "deflate";
}

function describeUnknownBits(bits: bigint, featureName: (kind: number, bit: number) => string | undefined): string {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit += 1) {
    if ((bits & (1n << BigInt(bit))) === 0n) continue;
    names.push(featureName(0, bit) ?? `unknown incompatible feature bit ${bit}`);
  }
  return names.join(", ");
}

/** Names of the known feature bits that are set, for `inspect` and warnings. */
export function featureNames(header: Qcow2Header): string[] {
  const names: string[] = [];
  const table: [bigint, bigint, string][] = [
    [header.incompatibleFeatures, INCOMPAT_DIRTY, "dirty"],
    [header.incompatibleFeatures, INCOMPAT_CORRUPT, "corrupt"],
    [header.incompatibleFeatures, INCOMPAT_DATA_FILE, "external data file"],
    [header.incompatibleFeatures, INCOMPAT_COMPRESSION, "compression type"],
    [header.incompatibleFeatures, INCOMPAT_EXTENDED_L2, "extended L2"],
    [header.compatibleFeatures, COMPAT_LAZY_REFCOUNTS, "lazy refcounts"],
    [header.autoclearFeatures, AUTOCLEAR_BITMAPS, "bitmaps"],
    [header.autoclearFeatures, AUTOCLEAR_DATA_FILE_RAW, "raw external data"],
  ];
  for (const [field, bit, name] of table) if ((field & bit) !== 0n) names.push(name);
  return names;
}
