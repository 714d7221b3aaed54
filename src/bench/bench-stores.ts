// The backstores `bench` measures, each behind a simulated device: RAM (an unnamed /dev/shm file),
// a raw image file in a scratch directory, and a qcow2 image made with qemu-img (read-only, as
// served). Stores are filled before reads are timed, so reads move data rather than holes.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { FileIoMode } from "../../backstores/file/file-io.ts";
import { openFileBackstore } from "../../backstores/file/open-file.ts";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../../backstores/types.ts";
import { SimDevice } from "../sim/sim-device.ts";

export type BenchStoreKind = "ram" | "file" | "qcow2";
export const BENCH_STORE_KINDS: readonly BenchStoreKind[] = ["ram", "file", "qcow2"];

export const BENCH_BLOCK_BYTES = 512;
/** The largest transfer a case uses; the device's hw_max_sectors is set to it. */
export const BENCH_IO_BYTES_MAX = 1024 * 1024;
const SIM_BLOCK_BYTES = 4096;
/** Command ring of the simulated device: room for hundreds of entries in flight. */
const SIM_RING_BYTES = 1024 * 1024;
const FILL_BYTE = 0x5a;

export interface BenchStoreOptions {
  sizeBytes: number;
  /** Where image files go (a directory on the file system to measure). */
  directory: string;
  fileIo: FileIoMode;
  queueDepthMax: number;
}

export interface BenchStore {
  kind: BenchStoreKind;
  device: SimDevice;
  readOnly: boolean;
  /** How data moves, for the report (e.g. "io_uring (256 entries)"). */
  ioDescription: string;
  close(): Promise<void>;
}

/** Opens, fills and wraps a store; a string says why this kind cannot be measured here. */
export async function openBenchStore(kind: BenchStoreKind, options: BenchStoreOptions): Promise<BenchStore | string> {
  const scratch = mkdtempSync(join(options.directory, "tcmu-bench-"));
  const removeScratch = () => rmSync(scratch, { recursive: true, force: true });
  try {
    const opened = await openStore(kind, scratch, options);
    if (typeof opened === "string") {
      removeScratch();
      return opened;
    }
    const device = new SimDevice({
      backstore: opened.backstore,
      sizeBytes: options.sizeBytes,
      blockSizeBytes: BENCH_BLOCK_BYTES,
      sim: { ringAreaBytes: SIM_RING_BYTES, dataBlockCount: (options.queueDepthMax * BENCH_IO_BYTES_MAX) / SIM_BLOCK_BYTES + 64 },
      // Write cache on: writes are not FUA, so they measure the data path rather than the disk's flush.
      scsi: { writeCacheEnabled: true, maxTransferBlocks: BENCH_IO_BYTES_MAX / BENCH_BLOCK_BYTES },
    });
    if (!opened.readOnly) await fill(device, options.sizeBytes);
    return {
      kind,
      device,
      readOnly: opened.readOnly,
      ioDescription: opened.ioDescription,
      close: async () => {
        await device.close();
        removeScratch();
      },
    };
  } catch (error) {
    removeScratch();
    throw error;
  }
}

interface OpenedStore {
  backstore: Backstore;
  readOnly: boolean;
  ioDescription: string;
}

async function openStore(kind: BenchStoreKind, scratch: string, options: BenchStoreOptions): Promise<OpenedStore | string> {
  switch (kind) {
    case "ram":
      return { backstore: new RamBackstore(options.sizeBytes, { blockSizeBytes: BENCH_BLOCK_BYTES }), readOnly: false, ioDescription: "synchronous (tmpfs)" };
    case "file": {
      const store = openFileBackstore(join(scratch, "disk.img"), { sizeBytes: options.sizeBytes, blockSizeBytes: BENCH_BLOCK_BYTES, io: options.fileIo });
      return { backstore: store, readOnly: false, ioDescription: store.ioDescription };
    }
    case "qcow2":
      return openQcow2Image(scratch, options.sizeBytes);
    default:
      return assertNever(kind);
  }
}

/** A fully allocated qcow2 image (64 KiB clusters, QEMU's default) filled by qemu-io. */
async function openQcow2Image(scratch: string, sizeBytes: number): Promise<OpenedStore | string> {
  const path = join(scratch, "disk.qcow2");
  const create = spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", path, String(sizeBytes)], { encoding: "utf8" });
  if (create.error !== undefined || create.status !== 0) return `qemu-img is not usable here (${create.error?.message ?? create.stderr.trim()})`;
  const fillCommand = `write -q -P ${FILL_BYTE} 0 ${sizeBytes}`;
  const filled = spawnSync("qemu-io", ["-f", "qcow2", "-c", fillCommand, path], { encoding: "utf8" });
  if (filled.error !== undefined || filled.status !== 0) return `qemu-io could not fill the image (${filled.error?.message ?? filled.stderr.trim()})`;
  // Loaded lazily, as `serve` does: the qcow2 code is only needed when such an image is served.
  const { openQcow2Backstore } = await import("../../backstores/qcow2/index.ts");
  const store = openQcow2Backstore(path, { sizeBytes, readOnly: true });
  return { backstore: store, readOnly: true, ioDescription: "synchronous (qcow2)" };
}

/** Writes every byte once, in 1 MiB commands. */
async function fill(device: SimDevice, sizeBytes: number): Promise<void> {
  const payload = new Uint8Array(BENCH_IO_BYTES_MAX).fill(FILL_BYTE);
  const blocks = BENCH_IO_BYTES_MAX / BENCH_BLOCK_BYTES;
  const cdb = new Uint8Array(16);
  const view = new DataView(cdb.buffer);
  cdb[0] = 0x8a; // WRITE(16)
  view.setUint32(10, blocks, false);
  for (let offset = 0; offset + BENCH_IO_BYTES_MAX <= sizeBytes; offset += BENCH_IO_BYTES_MAX) {
    view.setUint32(6, offset / BENCH_BLOCK_BYTES, false);
    const completion = await device.submit(cdb, { dataOut: payload });
    if (completion.status !== 0) throw new Error(`filling the store failed at byte ${offset} (status ${completion.status})`);
  }
}

function assertNever(value: never): never {
  throw new Error(`unknown bench store ${String(value)}`);
}
