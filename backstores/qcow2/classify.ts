// L2 entries, classified the way QEMU's qcow2_get_subcluster_type() does, and the contiguous
// run of same-type subclusters that starts at a guest offset (count_contiguous_subclusters()).
// Pure functions over the bytes of an L2 slice: no I/O, no state, so every case is testable.
//
// A standard entry is one big-endian u64: bit 63 "copied", bit 62 compressed, bits 9..55 the
// host cluster offset, bit 0 "reads as zero". An extended entry adds a u64 bitmap: bits 0..31
// say which subclusters are allocated, bits 32..63 which read as zero.

/** Subcluster types, numbered like QEMU's QCow2SubclusterType. */
export const Subcluster = {
  Normal: 0,
  ZeroPlain: 1,
  ZeroAlloc: 2,
  UnallocatedPlain: 3,
  UnallocatedAlloc: 4,
  Compressed: 5,
  Invalid: 6,
} as const;
export type SubclusterType = (typeof Subcluster)[keyof typeof Subcluster];

export const SUBCLUSTER_TYPE_NAMES: Record<SubclusterType, string> = {
  [Subcluster.Normal]: "normal",
  [Subcluster.ZeroPlain]: "zero",
  [Subcluster.ZeroAlloc]: "zero (allocated)",
  [Subcluster.UnallocatedPlain]: "unallocated",
  [Subcluster.UnallocatedAlloc]: "unallocated (allocated cluster)",
  [Subcluster.Compressed]: "compressed",
  [Subcluster.Invalid]: "invalid",
};

// Flags of the high word (bits 32..63) and the low word (bits 0..31).
const HI_COPIED = 0x8000_0000;
const HI_COMPRESSED = 0x4000_0000;
/** L2E_OFFSET_MASK 0x00fffffffffffe00, split in words. */
const HI_OFFSET_MASK = 0x00ff_ffff;
const LO_OFFSET_MASK = 0xffff_fe00;
const LO_ZERO = 0x1;
const WORD = 0x1_0000_0000;
const ALL_SUBCLUSTERS = 0xffff_ffff;

/** What classification needs to know about the image. */
export interface L2Geometry {
  clusterBits: number;
  clusterBytes: number;
  /** 8 for standard entries, 16 for extended ones. */
  entryBytes: number;
  extendedL2: boolean;
  subclustersPerCluster: number;
  subclusterBytes: number;
  /** Offset 0 with "copied" set is a real cluster in an external data file. */
  hasDataFile: boolean;
}

/**
 * The host cluster offset of an entry (bits 9..55). Exact as a double: a multiple of 512 below
 * 2^56 has at most 47 significant bits.
 */
export function entryHostOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * WORD + ((lo & LO_OFFSET_MASK) >>> 0);
}

export function isCompressedEntry(hi: number): boolean {
  return (hi & HI_COMPRESSED) !== 0;
}

/** QEMU's qcow2_get_subcluster_type() for subcluster `index` of an entry. */
export function classifySubcluster(geometry: L2Geometry, hi: number, lo: number, zeroBits: number, allocBits: number, index: number): SubclusterType {
  if ((hi & HI_COMPRESSED) !== 0) return Subcluster.Compressed;
  const hasOffset = (hi & HI_OFFSET_MASK) !== 0 || (lo & LO_OFFSET_MASK) !== 0;
  if (!geometry.extendedL2) {
    if ((lo & LO_ZERO) !== 0) return hasOffset ? Subcluster.ZeroAlloc : Subcluster.ZeroPlain;
    if (hasOffset || (geometry.hasDataFile && (hi & HI_COPIED) !== 0)) return Subcluster.Normal;
    return Subcluster.UnallocatedPlain;
  }
  const bit = 2 ** index;
  const allocated = hasOffset || (geometry.hasDataFile && (hi & HI_COPIED) !== 0);
  if (allocated) {
    if ((zeroBits & allocBits) !== 0) return Subcluster.Invalid;
    if ((zeroBits & bit) !== 0) return Subcluster.ZeroAlloc;
    if ((allocBits & bit) !== 0) return Subcluster.Normal;
    return Subcluster.UnallocatedAlloc;
  }
  if (allocBits !== 0) return Subcluster.Invalid;
  if ((zeroBits & bit) !== 0) return Subcluster.ZeroPlain;
  return Subcluster.UnallocatedPlain;
}

/** Trailing zero bits of a u32 (32 for 0). */
function trailingZeros32(value: number): number {
  if (value === 0) return 32;
  return 31 - Math.clz32(value & -value);
}

function trailingOnes32(value: number): number {
  return trailingZeros32(~value >>> 0);
}

/** Bits [0, count) set: the subclusters before `count`. */
function lowMask(count: number): number {
  return count >= 32 ? ALL_SUBCLUSTERS : (2 ** count - 1) >>> 0;
}

/**
 * How many subclusters from `from` on share `type` within one entry (QEMU's
 * qcow2_get_subcluster_range_type()): at least 1, at most to the end of the cluster.
 */
export function sameTypeSubclusters(geometry: L2Geometry, type: SubclusterType, zeroBits: number, allocBits: number, from: number): number {
  const perCluster = geometry.subclustersPerCluster;
  if (!geometry.extendedL2 || type === Subcluster.Compressed) return perCluster - from;
  switch (type) {
    case Subcluster.Normal:
      return Math.min(trailingOnes32((allocBits | lowMask(from)) >>> 0), perCluster) - from;
    case Subcluster.ZeroPlain:
    case Subcluster.ZeroAlloc:
      return Math.min(trailingOnes32((zeroBits | lowMask(from)) >>> 0), perCluster) - from;
    case Subcluster.UnallocatedPlain:
    case Subcluster.UnallocatedAlloc:
      return Math.min(trailingZeros32(((zeroBits | allocBits) & ~lowMask(from)) >>> 0), perCluster) - from;
    case Subcluster.Invalid:
      return 0;
  }
}

/** The run found by scanRun(): its type, length in subclusters and first entry's words. */
export interface Run {
  type: SubclusterType;
  subclusters: number;
  /** Words of the first entry (the host offset of a data run, a compressed descriptor). */
  hi: number;
  lo: number;
}

/**
 * Scans entries of `slice` from `entryIndex` (at most `entriesMax` of them), starting at
 * subcluster `from` of the first, and fills `run` with the longest run of one type: data runs
 * also need consecutive host clusters. A compressed cluster is always a run of its own.
 */
export function scanRun(geometry: L2Geometry, slice: DataView, entryIndex: number, from: number, entriesMax: number, run: Run): void {
  const entryBytes = geometry.entryBytes;
  let position = entryIndex * entryBytes;
  const hi = slice.getUint32(position, false);
  const lo = slice.getUint32(position + 4, false);
  const zeroBits = geometry.extendedL2 ? slice.getUint32(position + 8, false) : 0;
  const allocBits = geometry.extendedL2 ? slice.getUint32(position + 12, false) : 0;
  const type = classifySubcluster(geometry, hi, lo, zeroBits, allocBits, from);
  run.type = type;
  run.hi = hi;
  run.lo = lo;
  run.subclusters = sameTypeSubclusters(geometry, type, zeroBits, allocBits, from);
  if (type === Subcluster.Compressed || type === Subcluster.Invalid) return;
  if (from + run.subclusters < geometry.subclustersPerCluster) return;
  const checkOffset = type === Subcluster.Normal || type === Subcluster.ZeroAlloc || type === Subcluster.UnallocatedAlloc;
  let expectedOffset = entryHostOffset(hi, lo);
  for (let index = 1; index < entriesMax; index += 1) {
    position += entryBytes;
    const nextHi = slice.getUint32(position, false);
    const nextLo = slice.getUint32(position + 4, false);
    const nextZero = geometry.extendedL2 ? slice.getUint32(position + 8, false) : 0;
    const nextAlloc = geometry.extendedL2 ? slice.getUint32(position + 12, false) : 0;
    if (classifySubcluster(geometry, nextHi, nextLo, nextZero, nextAlloc, 0) !== type) return;
    if (checkOffset) {
      expectedOffset += geometry.clusterBytes;
      if (entryHostOffset(nextHi, nextLo) !== expectedOffset) return;
    }
    const count = sameTypeSubclusters(geometry, type, nextZero, nextAlloc, 0);
    run.subclusters += count;
    if (count < geometry.subclustersPerCluster) return;
  }
}
