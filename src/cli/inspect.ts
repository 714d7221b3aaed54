// `tcmu-appliance inspect IMAGE [--json]`: an image and its backing chain as the qcow2 backstore
// sees them — format, version, sizes, cluster size, compression, features, backing files with
// their formats, snapshots — in the shape of `qemu-img info --backing-chain`. An image the
// backstore would refuse is refused here with the same message (exit status 1).
import { defineCommand } from "citty";
import type { ImageInfo, SnapshotInfo } from "../../backstores/qcow2/describe.ts";
import { formatBytes } from "./format.ts";

const EXIT_REFUSED = 1;
const NANOSECONDS_PER_SECOND = 1e9;

export const inspectCommand = defineCommand({
  meta: { name: "inspect", description: "Describe a qcow2/qcow image and its backing chain (like qemu-img info --backing-chain), or an rbd/<pool>/<image>" },
  args: {
    image: { type: "positional", description: "Image file, or rbd/<pool>/<image>[;conf=…;id=…]", required: true },
    json: { type: "boolean", description: "Print JSON (an array, top image first)", default: false },
  },
  async run({ args }) {
    if (String(args.image).startsWith("rbd/")) {
      const { inspectRbd } = await import("./inspect-rbd.ts");
      process.exit(await inspectRbd(String(args.image), args.json === true));
    }
    const { describeChain } = await import("../../backstores/qcow2/describe.ts");
    const { ImageRefusedError } = await import("../../backstores/qcow2/errors.ts");
    let chain: ImageInfo[];
    try {
      chain = describeChain(String(args.image));
    } catch (error) {
      if (!(error instanceof ImageRefusedError)) throw error;
      console.error(`inspect: ${error.message}`);
      process.exit(EXIT_REFUSED);
    }
    console.log(args.json ? JSON.stringify(chain.map(toJson), null, 2) : chain.map(formatImage).join("\n\n"));
  },
});

/** Keys as `qemu-img info --output=json` names them, plus `features`. */
export function toJson(info: ImageInfo): Record<string, unknown> {
  const json: Record<string, unknown> = {
    filename: info.filename,
    format: info.format,
    "virtual-size": info.virtualSizeBytes,
    "actual-size": info.actualSizeBytes,
  };
  if (info.clusterSizeBytes !== undefined) json["cluster-size"] = info.clusterSizeBytes;
  if (info.backingFilename !== undefined) json["backing-filename"] = info.backingFilename;
  if (info.fullBackingFilename !== undefined) json["full-backing-filename"] = info.fullBackingFilename;
  if (info.backingFormat !== undefined) json["backing-filename-format"] = info.backingFormat;
  if (info.snapshots.length > 0) json.snapshots = info.snapshots.map(snapshotJson);
  if (info.format === "qcow2") {
    json["format-specific"] = {
      type: "qcow2",
      // Like QEMU, the v3-only fields are left out for compat 0.10.
      data: {
        compat: info.version === 3 ? "1.1" : "0.10",
        "compression-type": info.compressionType === "zstd" ? "zstd" : "zlib",
        ...(info.version === 3 ? { "lazy-refcounts": info.lazyRefcounts } : {}),
        "refcount-bits": info.refcountBits,
        ...(info.version === 3 ? { corrupt: info.corrupt, "extended-l2": info.extendedL2 } : {}),
        ...(info.dataFile === undefined ? {} : { "data-file": info.dataFile, "data-file-raw": info.dataFileRaw }),
      },
    };
  }
  if (info.version !== undefined) json.version = info.version;
  json.features = info.features;
  return json;
}

function snapshotJson(snapshot: SnapshotInfo): Record<string, unknown> {
  return {
    id: snapshot.id,
    name: snapshot.name,
    "vm-state-size": snapshot.vmStateBytes,
    "disk-size": snapshot.diskSizeBytes,
    "date-sec": snapshot.dateSeconds,
    "date-nsec": snapshot.dateNanoseconds,
    "vm-clock-nsec": snapshot.vmClockNanoseconds,
  };
}

export function formatImage(info: ImageInfo): string {
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}${info.version === undefined ? "" : ` (version ${info.version})`}`,
    `virtual size: ${formatBytes(info.virtualSizeBytes)} (${info.virtualSizeBytes} bytes)`,
    `disk size: ${formatBytes(info.actualSizeBytes)}`,
  ];
  if (info.clusterSizeBytes !== undefined) lines.push(`cluster_size: ${info.clusterSizeBytes}`);
  if (info.backingFilename !== undefined) {
    const actual = info.fullBackingFilename === undefined ? "" : ` (actual path: ${info.fullBackingFilename})`;
    lines.push(`backing file: ${info.backingFilename}${actual}`);
    if (info.backingFormat !== undefined) lines.push(`backing file format: ${info.backingFormat}`);
  }
  if (info.snapshots.length > 0) lines.push("Snapshot list:", ...formatSnapshots(info.snapshots));
  if (info.format === "qcow2") {
    lines.push(
      "Format specific information:",
      `    compat: ${info.version === 3 ? "1.1" : "0.10"}`,
      `    compression type: ${info.compressionType === "zstd" ? "zstd" : "zlib"}`,
    );
    if (info.version === 3) lines.push(`    lazy refcounts: ${info.lazyRefcounts}`);
    lines.push(`    refcount bits: ${info.refcountBits}`);
    if (info.version === 3) lines.push(`    corrupt: ${info.corrupt}`, `    extended l2: ${info.extendedL2}`);
    if (info.dataFile !== undefined) lines.push(`    data file: ${info.dataFile}`, `    data file raw: ${info.dataFileRaw}`);
  }
  lines.push(`features: ${info.features.length === 0 ? "none" : info.features.join(", ")}`);
  return lines.join("\n");
}

function formatSnapshots(snapshots: SnapshotInfo[]): string[] {
  const rows = snapshots.map((snapshot) => {
    const date = new Date(snapshot.dateSeconds * 1000).toISOString().replace("T", " ").slice(0, 19);
    const clockSeconds = snapshot.vmClockNanoseconds / NANOSECONDS_PER_SECOND;
    return [snapshot.id, snapshot.name, formatBytes(snapshot.vmStateBytes), date, formatClock(clockSeconds), formatBytes(snapshot.diskSizeBytes)];
  });
  const header = ["ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "DISK SIZE"];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return [header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
}

function formatClock(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = (seconds % 60).toFixed(3).padStart(6, "0");
  return `${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}:${rest}`;
}
