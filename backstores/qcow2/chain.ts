// Opens an image and its backing chain, top first. Backing names are untrusted input: relative
// names resolve against the overlay's directory (QEMU's path_combine()), protocol names are
// refused, the backing-format extension is honoured (a raw backing file is never probed as
// qcow2), files are told apart by device and inode so a loop is refused rather than followed,
// and the chain is capped in depth.
import { dirname, resolve } from "node:path";
import { SystemCallError } from "../../src/libc/errno.ts";
import { ImageRefusedError } from "./errors.ts";
import { QCOW_MAGIC } from "./header.ts";
import { ImageFile } from "./image-file.ts";
import type { ImageFormat, Layer } from "./layer.ts";
import { Qcow1Layer } from "./qcow1.ts";
import { Qcow2Layer, type LayerCacheOptions } from "./qcow2-layer.ts";
import { RawLayer } from "./raw-layer.ts";

/** Images in one chain, the top included. QEMU has no cap; a self-reference makes it loop. */
export const CHAIN_IMAGES_MAX = 64;
const PROBE_BYTES = 512;
const FILE_PROTOCOL_PREFIX = "file:";

/** Formats QEMU would recognise by their magic that this reader does not serve (refused by name). */
const OTHER_FORMAT_MAGICS: readonly { format: string; offset: number; magic: readonly number[] }[] = [
  { format: "vmdk", offset: 0, magic: [...Buffer.from("KDMV")] },
  { format: "vmdk", offset: 0, magic: [...Buffer.from("# Disk DescriptorFile")] },
  { format: "vdi", offset: 0x40, magic: [0x7f, 0x10, 0xda, 0xbe] },
  { format: "vhdx", offset: 0, magic: [...Buffer.from("vhdxfile")] },
  { format: "vpc", offset: 0, magic: [...Buffer.from("conectix")] },
  { format: "qed", offset: 0, magic: [...Buffer.from("QED\0")] },
  { format: "luks", offset: 0, magic: [...Buffer.from("LUKS"), 0xba, 0xbe] },
  { format: "parallels", offset: 0, magic: [...Buffer.from("WithoutFreeSpace")] },
  { format: "parallels", offset: 0, magic: [...Buffer.from("WithouFreSpacExt")] },
  { format: "bochs", offset: 0, magic: [...Buffer.from("Bochs Virtual HD Image")] },
];

export interface ChainOptions extends LayerCacheOptions {
  /** Internal snapshot of the top image to serve. */
  snapshot?: string;
  /** Accept a raw top image (`inspect` describes any image; a backstore serves qcow only). */
  rawTop?: boolean;
}

/** What QEMU's probe makes of the first bytes: qcow (v1), qcow2, another format, or raw. */
export function probeFormat(firstBytes: Uint8Array): ImageFormat | { other: string } {
  if (firstBytes.byteLength >= 8) {
    const view = new DataView(firstBytes.buffer, firstBytes.byteOffset, firstBytes.byteLength);
    if (view.getUint32(0, false) === QCOW_MAGIC) {
      const version = view.getUint32(4, false);
      if (version === 1) return "qcow";
      if (version >= 2) return "qcow2";
    }
  }
  for (const entry of OTHER_FORMAT_MAGICS) {
    const end = entry.offset + entry.magic.length;
    if (end <= firstBytes.byteLength && entry.magic.every((byte, index) => firstBytes[entry.offset + index] === byte)) return { other: entry.format };
  }
  return "raw";
}

/** A name from an image, as a local path relative to the image that names it. */
export function resolveImageName(referrerPath: string, name: string, role: string): string {
  let local = name;
  if (local.startsWith(FILE_PROTOCOL_PREFIX)) local = local.slice(FILE_PROTOCOL_PREFIX.length);
  // QEMU's path_has_protocol(): a ':' before any '/' names a protocol (nbd:, json:, http:...).
  const colon = local.indexOf(":");
  const slash = local.indexOf("/");
  if (colon >= 0 && (slash < 0 || colon < slash)) throw new ImageRefusedError(referrerPath, `${role} '${name}' names a protocol; only local files are served`);
  if (local === "") throw new ImageRefusedError(referrerPath, `${role} name is empty`);
  return resolve(dirname(referrerPath), local);
}

/** Opens `path` (qcow or qcow2) and everything it is backed by; the caller closes the layers. */
export function openChain(path: string, options: ChainOptions): Layer[] {
  const layers: Layer[] = [];
  const seen = new Map<string, string>();
  try {
    let layer = openLayer(path, "image", undefined, options, seen, true);
    layers.push(layer);
    while (layer.backingName !== undefined) {
      if (layers.length >= CHAIN_IMAGES_MAX) throw new ImageRefusedError(path, `backing chain deeper than ${CHAIN_IMAGES_MAX} images`);
      const backingPath = resolveImageName(layer.file.path, layer.backingName, "backing file");
      layer = openLayer(backingPath, "backing file", layer.backingFormat, { ...options, snapshot: undefined, rawTop: false }, seen, false);
      layers.push(layer);
    }
    return layers;
  } catch (error) {
    for (const opened of layers) opened.close();
    throw error;
  }
}

function openLayer(path: string, role: string, namedFormat: string | undefined, options: ChainOptions, seen: Map<string, string>, top: boolean): Layer {
  const file = ImageFile.open(path, role);
  try {
    const earlier = seen.get(file.identity);
    if (earlier !== undefined) throw new ImageRefusedError(path, `backing chain loops: this is the same file as ${earlier}`);
    seen.set(file.identity, path);
    const format = namedFormat ?? probedFormat(file, top);
    if (top && !options.rawTop && format !== "qcow2" && format !== "qcow") throw new ImageRefusedError(path, `not a qcow or qcow2 image (${format === "raw" ? "no qcow magic" : `looks like ${format}`})`);
    return makeLayer(file, format, options);
  } catch (error) {
    file.close();
    if (error instanceof SystemCallError) throw new ImageRefusedError(path, `cannot read ${role}: ${error.code}`);
    throw error;
  }
}

function makeLayer(file: ImageFile, format: string, options: ChainOptions): Layer {
  switch (format) {
    case "qcow2":
      return new Qcow2Layer(file, {
        ...options,
        openDataFile: (name) => ImageFile.open(resolveImageName(file.path, name, "external data file"), "external data file"),
      });
    case "qcow":
      if (options.snapshot !== undefined) throw new ImageRefusedError(file.path, "qcow (v1) images have no internal snapshots");
      return new Qcow1Layer(file, options);
    case "raw":
      return new RawLayer(file);
    default:
      throw new ImageRefusedError(file.path, `format '${format}' is not supported (qcow2, qcow and raw are)`);
  }
}

/** A backing file is probed like QEMU does; a top image with the qcow magic is qcow2 unless version 1. */
function probedFormat(file: ImageFile, top: boolean): string {
  const first = new Uint8Array(Math.min(PROBE_BYTES, file.sizeBytes));
  file.readAt(first, 0);
  if (top && first.byteLength >= 8 && new DataView(first.buffer).getUint32(0, false) === QCOW_MAGIC) {
    return new DataView(first.buffer).getUint32(4, false) === 1 ? "qcow" : "qcow2";
  }
  const probed = probeFormat(first);
  return typeof probed === "string" ? probed : probed.other;
}
