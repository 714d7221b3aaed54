// The internal snapshot table (qcow2.rst "Snapshot table"): one entry per snapshot with its own
// L1 table and disk size. Read at open like QEMU's qcow2_read_snapshots() (so `inspect` can
// list them and `snapshot=NAME` can pick one), one small read per entry, never the whole table.
import { ImageRefusedError } from "./errors.ts";
import { hex, u16be, u32be, u64beBig, viewOf } from "./fields.ts";
import { SNAPSHOT_HEADER_BYTES, type Qcow2Header } from "./header.ts";
import type { ImageFile } from "./image-file.ts";

/** QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA and QCOW_MAX_SNAPSHOTS_SIZE. */
const SNAPSHOT_EXTRA_BYTES_MAX = 1024;
const SNAPSHOT_TABLE_BYTES_MAX = 1024 * 65536;
const ENTRY_ALIGN_BYTES = 8;
/** Extra data: vm_state_size_large (8), disk_size (8), icount (8). */
const EXTRA_DISK_SIZE_END = 16;

export interface Qcow2Snapshot {
  index: number;
  id: string;
  name: string;
  l1TableOffset: bigint;
  l1Size: number;
  /** The guest disk size when the snapshot was taken (the image's size when not recorded). */
  diskSizeExact: bigint;
  dateSeconds: number;
  dateNanoseconds: number;
  vmClockNanoseconds: bigint;
  vmStateBytes: bigint;
}

export function readSnapshotTable(file: ImageFile, header: Qcow2Header): Qcow2Snapshot[] {
  const snapshots: Qcow2Snapshot[] = [];
  let offset = header.snapshotsOffset;
  const fixed = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  for (let index = 0; index < header.snapshotCount; index += 1) {
    const what = `snapshot table entry ${index}`;
    file.readExactOrRefuse(fixed, offset, what);
    const view = viewOf(fixed);
    const idBytes = u16be(view, 12);
    const nameBytes = u16be(view, 14);
    const extraBytes = u32be(view, 36);
    if (extraBytes > SNAPSHOT_EXTRA_BYTES_MAX) throw new ImageRefusedError(file.path, `too much extra metadata in ${what} (${extraBytes} bytes)`);
    const variable = new Uint8Array(extraBytes + idBytes + nameBytes);
    file.readExactOrRefuse(variable, offset + SNAPSHOT_HEADER_BYTES, what);
    const extra = viewOf(variable.subarray(0, extraBytes));
    const decoder = new TextDecoder("utf-8", { fatal: false });
    snapshots.push({
      index,
      id: decoder.decode(variable.subarray(extraBytes, extraBytes + idBytes)),
      name: decoder.decode(variable.subarray(extraBytes + idBytes)),
      l1TableOffset: u64beBig(view, 0),
      l1Size: u32be(view, 8),
      diskSizeExact: extraBytes >= EXTRA_DISK_SIZE_END ? u64beBig(extra, 8) : header.sizeExact,
      dateSeconds: u32be(view, 16),
      dateNanoseconds: u32be(view, 20),
      vmClockNanoseconds: u64beBig(view, 24),
      vmStateBytes: extraBytes >= 8 ? u64beBig(extra, 0) : BigInt(u32be(view, 32)),
    });
    const entryBytes = SNAPSHOT_HEADER_BYTES + variable.byteLength;
    offset += Math.ceil(entryBytes / ENTRY_ALIGN_BYTES) * ENTRY_ALIGN_BYTES;
    if (offset - header.snapshotsOffset > SNAPSHOT_TABLE_BYTES_MAX) {
      throw new ImageRefusedError(file.path, `snapshot table is too big (past ${SNAPSHOT_TABLE_BYTES_MAX} bytes at entry ${index}, offset ${hex(offset)})`);
    }
  }
  return snapshots;
}

/** QEMU's lookup for `-s ID_OR_NAME`: by ID first, then by name. */
export function findSnapshot(snapshots: readonly Qcow2Snapshot[], idOrName: string): Qcow2Snapshot | undefined {
  return snapshots.find((snapshot) => snapshot.id === idOrName) ?? snapshots.find((snapshot) => snapshot.name === idOrName);
}
