// The qcow/qcow2 backstore's entry points: open an image (and its chain) read-only as a
// Backstore, and tell a qcow image from its first bytes. The modules beside this one say which
// part of QEMU's behaviour (block/qcow2*.c, block/qcow.c, 7.2) each follows.
import type { Backstore } from "../types.ts";
import { Qcow2Backstore } from "./backstore.ts";
import { openChain } from "./chain.ts";
import { ImageRefusedError } from "./errors.ts";
import { QCOW_MAGIC } from "./header.ts";

export { ImageRefusedError } from "./errors.ts";
export { Qcow2Backstore } from "./backstore.ts";

export interface Qcow2BackstoreOptions {
  /** Internal snapshot of the top image to serve (by ID, then by name, like `qemu-img convert -s`). */
  snapshot?: string;
  /** The device's dev_size: larger than the image is refused, smaller is served with a warning. */
  sizeBytes: number;
  readOnly: true;
  /** L2 cache budget of each image in the chain; default: its whole disk's tables, at most 32 MiB. */
  l2CacheBytes?: number;
  /** Decompressed-cluster cache budget of each image in the chain (default 8 MiB). */
  decompressedCacheBytes?: number;
}

/** A qcow2 backstore; `warnings` holds what the caller should log at open (a smaller dev_size…). */
export type Qcow2BackstoreHandle = Backstore & { readonly warnings: readonly string[] };

/**
 * Opens `path` (qcow2 v2/v3 or qcow v1) and its backing chain read-only. Throws
 * ImageRefusedError (a BackstoreOpenError) naming the file and the reason when it cannot be
 * served exactly as QEMU would read it.
 */
export function openQcow2Backstore(path: string, options: Qcow2BackstoreOptions): Qcow2BackstoreHandle {
  const layers = openChain(path, {
    snapshot: options.snapshot,
    l2CacheBytes: options.l2CacheBytes,
    decompressedCacheBytes: options.decompressedCacheBytes,
  });
  const top = layers[0]!;
  const warnings = layers.flatMap((layer) => [...layer.warnings]);
  const what = options.snapshot === undefined ? "image" : `snapshot '${options.snapshot}'`;
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0 || options.sizeBytes > top.sizeBytes) {
    for (const layer of layers) layer.close();
    throw new ImageRefusedError(path, `dev_size ${options.sizeBytes} does not fit the ${what}'s virtual size ${top.sizeBytes}: reads past the image would be invented`);
  }
  if (options.sizeBytes < top.sizeBytes) {
    warnings.push(`${path}: dev_size ${options.sizeBytes} is smaller than the ${what}'s virtual size ${top.sizeBytes}; the last ${top.sizeBytes - options.sizeBytes} bytes are not served`);
  }
  const description = options.snapshot === undefined ? `qcow2/${path}` : `qcow2/${path};snapshot=${options.snapshot}`;
  return new Qcow2Backstore(layers, options.sizeBytes, description, warnings);
}

/** The qcow magic (shared by qcow v1 and qcow2) at the start of `firstBytes`. */
export function isQcowImage(firstBytes: Uint8Array): boolean {
  if (firstBytes.byteLength < 4) return false;
  return new DataView(firstBytes.buffer, firstBytes.byteOffset, 4).getUint32(0, false) === QCOW_MAGIC;
}
