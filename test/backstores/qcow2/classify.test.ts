// The pure L2 classification and run scan, case by case, against QEMU's rules
// (qcow2_get_subcluster_type(), qcow2_get_subcluster_range_type(), count_contiguous_subclusters()).
import { describe, expect, test } from "bun:test";
import { classifySubcluster, entryHostOffset, scanRun, Subcluster, type L2Geometry, type Run, type SubclusterType } from "../../../backstores/qcow2/classify.ts";

const standard: L2Geometry = { clusterBits: 16, clusterBytes: 65536, entryBytes: 8, extendedL2: false, subclustersPerCluster: 1, subclusterBytes: 65536, hasDataFile: false };
const extended: L2Geometry = { ...standard, entryBytes: 16, extendedL2: true, subclustersPerCluster: 32, subclusterBytes: 2048 };
const dataFile: L2Geometry = { ...standard, hasDataFile: true };

const COPIED_HI = 0x8000_0000;
const COMPRESSED_HI = 0x4000_0000;

describe("classifySubcluster() follows QEMU's order", () => {
  const rows: [string, L2Geometry, number, number, number, number, number, SubclusterType][] = [
    // name, geometry, hi, lo, zero bits, alloc bits, subcluster, expected
    ["compressed wins over everything", standard, COMPRESSED_HI | COPIED_HI, 0x1, 0, 0, 0, Subcluster.Compressed],
    ["zero flag without an offset", standard, 0, 0x1, 0, 0, 0, Subcluster.ZeroPlain],
    ["zero flag with an offset keeps the cluster", standard, COPIED_HI, 0x5_0001, 0, 0, 0, Subcluster.ZeroAlloc],
    ["offset 0 is unallocated", standard, COPIED_HI, 0, 0, 0, 0, Subcluster.UnallocatedPlain],
    ["offset 0 with 'copied' is a real cluster in a data file", dataFile, COPIED_HI, 0, 0, 0, 0, Subcluster.Normal],
    ["an offset is normal data", standard, 0, 0x5_0000, 0, 0, 0, Subcluster.Normal],
    ["offset bits above 2^32 count", standard, 0x1, 0, 0, 0, 0, Subcluster.Normal],
    ["extended: the zero flag of the entry is ignored", extended, 0, 0x1, 0, 0, 0, Subcluster.UnallocatedPlain],
    ["extended: allocated subcluster", extended, COPIED_HI, 0x5_0000, 0, 0b100, 2, Subcluster.Normal],
    ["extended: zero subcluster of an allocated cluster", extended, COPIED_HI, 0x5_0000, 0b100, 0b011, 2, Subcluster.ZeroAlloc],
    ["extended: neither bit reads the backing file", extended, COPIED_HI, 0x5_0000, 0, 0b011, 2, Subcluster.UnallocatedAlloc],
    ["extended: allocated and zero at once is invalid", extended, COPIED_HI, 0x5_0000, 0b1000, 0b1000, 2, Subcluster.Invalid],
    ["extended: allocation bits without a cluster are invalid", extended, 0, 0, 0, 0b1, 2, Subcluster.Invalid],
    ["extended: zero subcluster without a cluster", extended, 0, 0, 0b100, 0, 2, Subcluster.ZeroPlain],
  ];
  for (const [name, geometry, hi, lo, zeroBits, allocBits, index, expected] of rows) {
    test(name, () => expect(classifySubcluster(geometry, hi, lo, zeroBits, allocBits, index)).toBe(expected));
  }

  test("entryHostOffset() masks flags and keeps 56-bit offsets exact", () => {
    expect(entryHostOffset(COPIED_HI | COMPRESSED_HI | 0x00ff_ffff, 0xffff_ffff)).toBe(2 ** 56 - 512);
    expect(entryHostOffset(0, 0x1ff)).toBe(0);
  });
});

/** An L2 slice of `entries` (hi, lo[, zero bits, alloc bits]) in big-endian. */
function slice(geometry: L2Geometry, entries: number[][]): DataView {
  const view = new DataView(new ArrayBuffer(entries.length * geometry.entryBytes));
  entries.forEach((words, index) => words.forEach((word, wordIndex) => view.setUint32(index * geometry.entryBytes + wordIndex * 4, word, false)));
  return view;
}

function scan(geometry: L2Geometry, entries: number[][], entryIndex: number, from: number, entriesMax = entries.length - entryIndex): Run {
  const run: Run = { type: Subcluster.Invalid, subclusters: 0, hi: 0, lo: 0 };
  scanRun(geometry, slice(geometry, entries), entryIndex, from, entriesMax, run);
  return run;
}

describe("scanRun() finds the contiguous run QEMU would", () => {
  test("consecutive host clusters make one data run; a gap ends it", () => {
    const entries = [[COPIED_HI, 0x10_0000], [COPIED_HI, 0x11_0000], [COPIED_HI, 0x12_0000], [COPIED_HI, 0x20_0000]];
    expect(scan(standard, entries, 0, 0)).toMatchObject({ type: Subcluster.Normal, subclusters: 3, lo: 0x10_0000 });
  });

  test("the run stops at the entries asked for", () => {
    const entries = [[COPIED_HI, 0x10_0000], [COPIED_HI, 0x11_0000], [COPIED_HI, 0x12_0000]];
    expect(scan(standard, entries, 0, 0, 2).subclusters).toBe(2);
  });

  test("unallocated entries run together whatever their other bits", () => {
    expect(scan(standard, [[0, 0], [0, 0], [COPIED_HI, 0x10_0000]], 0, 0)).toMatchObject({ type: Subcluster.UnallocatedPlain, subclusters: 2 });
  });

  test("a compressed cluster is always a run of its own", () => {
    expect(scan(standard, [[COMPRESSED_HI, 0x1000], [COMPRESSED_HI, 0x2000]], 0, 0)).toMatchObject({ type: Subcluster.Compressed, subclusters: 1 });
  });

  test("zero clusters with and without offsets are different runs", () => {
    expect(scan(standard, [[0, 1], [0, 1], [COPIED_HI, 0x10_0001]], 0, 0)).toMatchObject({ type: Subcluster.ZeroPlain, subclusters: 2 });
  });

  test("extended: a run of allocated subclusters ends at the first one that is not", () => {
    const entries = [[COPIED_HI, 0x10_0000, 0, 0x0000_00ff]];
    expect(scan(extended, entries, 0, 2)).toMatchObject({ type: Subcluster.Normal, subclusters: 6 });
  });

  test("extended: fully allocated clusters continue into the next consecutive cluster", () => {
    const entries = [[COPIED_HI, 0x10_0000, 0, 0xffff_ffff], [COPIED_HI, 0x11_0000, 0, 0x0000_000f]];
    expect(scan(extended, entries, 0, 30)).toMatchObject({ type: Subcluster.Normal, subclusters: 2 + 4 });
  });

  test("extended: backing subclusters of an allocated cluster and of an unallocated one differ", () => {
    const entries = [[COPIED_HI, 0x10_0000, 0, 0x0000_0001], [0, 0, 0, 0]];
    expect(scan(extended, entries, 0, 1)).toMatchObject({ type: Subcluster.UnallocatedAlloc, subclusters: 31 });
  });

  test("an invalid entry is a run of nothing, reported by the caller", () => {
    expect(scan(extended, [[0, 0, 0, 1]], 0, 0)).toMatchObject({ type: Subcluster.Invalid, subclusters: 0 });
  });
});
