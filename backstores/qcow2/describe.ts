// What `tcmu-appliance inspect` shows about an image and its backing chain, like
// `qemu-img info --backing-chain`: read from the same parsed headers the backstore serves from,
// so an image inspect can describe is one the backstore opens (and a refusal reads the same).
import { openChain } from "./chain.ts";
import { featureNames, AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, INCOMPAT_CORRUPT, INCOMPAT_DIRTY } from "./header.ts";
import type { ImageFormat, Layer } from "./layer.ts";
import { Qcow1Layer } from "./qcow1.ts";
import { Qcow2Layer } from "./qcow2-layer.ts";

export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateBytes: number;
  diskSizeBytes: number;
  dateSeconds: number;
  dateNanoseconds: number;
  vmClockNanoseconds: number;
}

export interface ImageInfo {
  filename: string;
  format: ImageFormat;
  virtualSizeBytes: number;
  /** Bytes the file takes on disk. */
  actualSizeBytes: number;
  clusterSizeBytes?: number;
  /** qcow2: 2 or 3 (compat 0.10 or 1.1); qcow: 1. */
  version?: number;
  compressionType?: "deflate" | "zstd";
  /** Feature bits that are set, by name ("lazy refcounts", "extended L2", "external data file"…). */
  features: string[];
  refcountBits?: number;
  lazyRefcounts?: boolean;
  corrupt?: boolean;
  dirty?: boolean;
  extendedL2?: boolean;
  /** As stored in the image, and resolved against the image's directory. */
  backingFilename?: string;
  fullBackingFilename?: string;
  backingFormat?: string;
  dataFile?: string;
  dataFileRaw?: boolean;
  snapshots: SnapshotInfo[];
}

/** Describes `path` and every image below it. Throws ImageRefusedError like the backstore. */
export function describeChain(path: string): ImageInfo[] {
  const layers = openChain(path, { rawTop: true, l2CacheBytes: 0, decompressedCacheBytes: 0 });
  try {
    return layers.map((layer, index) => describeLayer(layer, layers[index + 1]));
  } finally {
    for (const layer of layers) layer.close();
  }
}

function describeLayer(layer: Layer, backing: Layer | undefined): ImageInfo {
  const info: ImageInfo = {
    filename: layer.file.path,
    format: layer.format,
    virtualSizeBytes: layer.sizeBytes,
    actualSizeBytes: layer.file.allocatedBytes,
    features: [],
    snapshots: [],
  };
  if (layer.backingName !== undefined) {
    info.backingFilename = layer.backingName;
    if (backing !== undefined) info.fullBackingFilename = backing.file.path;
    info.backingFormat = layer.backingFormat ?? backing?.format;
  }
  if (layer instanceof Qcow2Layer) describeQcow2(layer, info);
  if (layer instanceof Qcow1Layer) {
    info.version = 1;
    info.clusterSizeBytes = layer.clusterBytes;
  }
  return info;
}

function describeQcow2(layer: Qcow2Layer, info: ImageInfo): void {
  const header = layer.header;
  info.version = header.version;
  info.clusterSizeBytes = header.clusterBytes;
  info.compressionType = header.compressionType;
  info.features = featureNames(header);
  info.refcountBits = 2 ** header.refcountOrder;
  info.lazyRefcounts = (header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
  info.corrupt = (header.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n;
  info.dirty = (header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n;
  info.extendedL2 = header.extendedL2;
  if (layer.extensions.dataFileName !== undefined && layer.dataFile !== undefined) {
    info.dataFile = layer.extensions.dataFileName;
    info.dataFileRaw = (header.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
  }
  info.snapshots = layer.snapshots.map((snapshot) => ({
    id: snapshot.id,
    name: snapshot.name,
    vmStateBytes: Number(snapshot.vmStateBytes),
    diskSizeBytes: Number(snapshot.diskSizeExact),
    dateSeconds: snapshot.dateSeconds,
    dateNanoseconds: snapshot.dateNanoseconds,
    vmClockNanoseconds: Number(snapshot.vmClockNanoseconds),
  }));
}
