// Header extensions (qcow2.rst "Header extensions") and the backing file name, both inside
// cluster 0. Walked like QEMU's qcow2_read_extensions(): `u32 type, u32 length, data` padded to
// 8 bytes, stopping at type 0 or at the end offset; an extension running past that end is
// refused. Names read from here (backing file, data file) are untrusted input.
import { ImageRefusedError } from "./errors.ts";
import { AUTOCLEAR_BITMAPS, CRYPT_LUKS, type Qcow2Header } from "./header.ts";
import { hex, u32be, u64beBig, u8, viewOf } from "./fields.ts";

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

const EXT_HEADER_BYTES = 8;
const EXT_ALIGN_BYTES = 8;
/** QEMU keeps the backing format in a 16-byte buffer with its NUL. */
const BACKING_FORMAT_BYTES_MAX = 15;
const FEATURE_TABLE_ENTRY_BYTES = 48;
const FEATURE_NAME_BYTES = 46;
const BITMAPS_EXT_BYTES = 24;
const CRYPTO_EXT_BYTES = 16;
/** QEMU's QCOW2_MAX_BITMAPS and QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
const BITMAPS_MAX = 65535;
const BITMAP_DIRECTORY_BYTES_MAX = 1024 * BITMAPS_MAX;
/** QEMU's backing file name limit (a 1024-byte buffer with its NUL). */
export const BACKING_NAME_BYTES_MAX = 1023;

export interface Qcow2Extensions {
  backingFormat: string | undefined;
  dataFileName: string | undefined;
  /** "type:bit" → name, from the feature name table. */
  featureNames: Map<string, string>;
  bitmapCount: number;
  /** Types of extensions this reader does not know (QEMU keeps and ignores them too). */
  unknownTypes: number[];
}

/** A C string from `bytes`: up to the first NUL, as QEMU reads names into NUL-padded buffers. */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder("utf-8", { fatal: false }).decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/**
 * Parses the extensions of `cluster0` (the first cluster of the file, cut short where the file
 * ends) from the end of the fixed header to `header.extensionsEnd`.
 */
export function parseExtensions(path: string, header: Qcow2Header, cluster0: Uint8Array): Qcow2Extensions {
  const refuse = (reason: string): never => {
    throw new ImageRefusedError(path, reason);
  };
  const view = viewOf(cluster0);
  const result: Qcow2Extensions = { backingFormat: undefined, dataFileName: undefined, featureNames: new Map(), bitmapCount: 0, unknownTypes: [] };
  const end = header.extensionsEnd;
  let offset = header.headerLength;
  while (offset < end) {
    if (offset + EXT_HEADER_BYTES > cluster0.byteLength) refuse(`header extension at ${hex(offset)} lies past the end of the file`);
    const type = u32be(view, offset);
    const length = u32be(view, offset + 4);
    offset += EXT_HEADER_BYTES;
    if (offset > end || length > end - offset) refuse(`header extension ${hex(type)} too large (${length} bytes at ${hex(offset)}, extensions end at ${hex(end)})`);
    if (type === EXT_END) return result;
    if (offset + length > cluster0.byteLength) refuse(`header extension ${hex(type)} lies past the end of the file`);
    const data = cluster0.subarray(offset, offset + length);
    readExtension(type, data, header, result, refuse);
    offset += Math.ceil(length / EXT_ALIGN_BYTES) * EXT_ALIGN_BYTES;
  }
  return result;
}

function readExtension(type: number, data: Uint8Array, header: Qcow2Header, result: Qcow2Extensions, refuse: (reason: string) => never): void {
  switch (type) {
    case EXT_BACKING_FORMAT:
      if (data.byteLength > BACKING_FORMAT_BYTES_MAX) refuse(`backing format name too long (${data.byteLength} bytes, at most ${BACKING_FORMAT_BYTES_MAX})`);
      result.backingFormat = cString(data);
      return;
    case EXT_FEATURE_TABLE:
      for (let entry = 0; entry + FEATURE_TABLE_ENTRY_BYTES <= data.byteLength; entry += FEATURE_TABLE_ENTRY_BYTES) {
        const name = cString(data.subarray(entry + 2, entry + 2 + FEATURE_NAME_BYTES));
        result.featureNames.set(`${u8(data, entry)}:${u8(data, entry + 1)}`, name);
      }
      return;
    case EXT_CRYPTO:
      if (header.cryptMethod !== CRYPT_LUKS) refuse("CRYPTO header extension only expected with LUKS encryption method");
      if (data.byteLength !== CRYPTO_EXT_BYTES) refuse(`CRYPTO header extension size ${data.byteLength}, but expected size ${CRYPTO_EXT_BYTES}`);
      return;
    case EXT_BITMAPS:
      checkBitmaps(data, header, result, refuse);
      return;
    case EXT_DATA_FILE:
      result.dataFileName = cString(data);
      return;
    default:
      result.unknownTypes.push(type);
  }
}

/** QEMU's checks of the bitmaps extension; bitmaps themselves do not matter to a reader. */
function checkBitmaps(data: Uint8Array, header: Qcow2Header, result: Qcow2Extensions, refuse: (reason: string) => never): void {
  if (data.byteLength !== BITMAPS_EXT_BYTES) refuse(`bitmaps extension: invalid length ${data.byteLength}`);
  // Without the autoclear bit a program lacking bitmap support touched the image: QEMU drops
  // the bitmaps as inconsistent and opens it.
  if ((header.autoclearFeatures & AUTOCLEAR_BITMAPS) === 0n) return;
  const view = viewOf(data);
  const count = u32be(view, 0);
  if (u32be(view, 4) !== 0) refuse("bitmaps extension: reserved32 is not zero");
  if (count > BITMAPS_MAX) refuse(`bitmaps extension: image has ${count} bitmaps, exceeding the maximum of ${BITMAPS_MAX}`);
  if (count === 0) refuse("bitmaps extension with zero bitmaps");
  if (u64beBig(view, 16) % BigInt(header.clusterBytes) !== 0n) refuse("bitmaps extension: invalid bitmap directory offset");
  const directoryBytes = u64beBig(view, 8);
  if (directoryBytes > BigInt(BITMAP_DIRECTORY_BYTES_MAX)) refuse(`bitmaps extension: bitmap directory size (${directoryBytes}) exceeds the maximum supported size (${BITMAP_DIRECTORY_BYTES_MAX})`);
  result.bitmapCount = count;
}

/** The backing file name stored at backing_file_offset, or undefined when there is none. */
export function readBackingName(path: string, header: Qcow2Header, cluster0: Uint8Array): string | undefined {
  if (header.backingFileOffset === 0) return undefined;
  const length = header.backingFileNameBytes;
  if (length > Math.min(BACKING_NAME_BYTES_MAX, header.clusterBytes - header.backingFileOffset)) {
    throw new ImageRefusedError(path, `backing file name too long (${length} bytes)`);
  }
  if (header.backingFileOffset + length > cluster0.byteLength) throw new ImageRefusedError(path, "backing file name lies past the end of the file");
  // Not NUL-terminated on disk; QEMU reads it into a zeroed buffer, so an embedded NUL ends it,
  // and an empty name means no backing file.
  const name = cString(cluster0.subarray(header.backingFileOffset, header.backingFileOffset + length));
  return name === "" ? undefined : name;
}
