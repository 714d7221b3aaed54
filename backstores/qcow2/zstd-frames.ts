// Walks zstd frame headers (RFC 8878 section 3.1) to find where each frame ends. QEMU hands
// its zstd decoder a sector-rounded buffer whose tail is whatever follows in the file, and may
// (by the spec) write several frames for one cluster; a one-shot decompressor fails on the
// trailing bytes, so we cut the buffer into exact frames first. The walk also bounds each
// frame's output from its headers, so nothing larger than the cluster is ever decompressed.

const FRAME_MAGIC = 0xfd2fb528;
/** Skippable frames carry magic 0x184D2A50..0x184D2A5F. */
const SKIPPABLE_MAGIC_BASE = 0x184d2a50;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const MAGIC_BYTES = 4;
const SKIPPABLE_SIZE_BYTES = 4;
const BLOCK_HEADER_BYTES = 3;
const CHECKSUM_BYTES = 4;
/** Block_Maximum_Size is min(Window_Size, 128 KiB). */
export const ZSTD_BLOCK_BYTES_MAX = 128 * 1024;
const WINDOW_LOG_MIN = 10;
const BLOCK_TYPE_RAW = 0;
const BLOCK_TYPE_RLE = 1;
const BLOCK_TYPE_COMPRESSED = 2;
/** FCS_Field_Size by Frame_Content_Size_flag (flag 0 gives 1 byte only in single-segment frames). */
const FCS_FIELD_BYTES = [0, 2, 4, 8] as const;
const DICTIONARY_ID_BYTES = [0, 1, 2, 4] as const;
/** A 2-byte content size field stores the size minus 256. */
const FCS_TWO_BYTE_BIAS = 256;

export interface ZstdFrame {
  startBytes: number;
  endBytes: number;
  /** Skippable frames produce nothing. */
  skippable: boolean;
  /** The declared content size, when the header has one. */
  contentBytes: number | undefined;
  /** Most bytes the frame can produce, from its block headers. */
  outputBytesMax: number;
}

/** Reads a little-endian unsigned field of 1..8 bytes (zstd fields are little-endian). */
function uintLe(bytes: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let index = length - 1; index >= 0; index -= 1) value = value * 256 + bytes[offset + index]!;
  return value;
}

/**
 * The frame starting at `start`, or undefined when the bytes there are not a whole, well-formed
 * frame header and block sequence (garbage, or cut short by the end of the buffer).
 */
export function walkFrame(bytes: Uint8Array, start: number): ZstdFrame | undefined {
  if (start + MAGIC_BYTES > bytes.byteLength) return undefined;
  const magic = uintLe(bytes, start, MAGIC_BYTES);
  if (((magic & SKIPPABLE_MAGIC_MASK) >>> 0) === SKIPPABLE_MAGIC_BASE) {
    const dataStart = start + MAGIC_BYTES + SKIPPABLE_SIZE_BYTES;
    if (dataStart > bytes.byteLength) return undefined;
    const end = dataStart + uintLe(bytes, start + MAGIC_BYTES, SKIPPABLE_SIZE_BYTES);
    if (end > bytes.byteLength) return undefined;
    return { startBytes: start, endBytes: end, skippable: true, contentBytes: 0, outputBytesMax: 0 };
  }
  if (magic !== FRAME_MAGIC) return undefined;
  let position = start + MAGIC_BYTES;
  if (position >= bytes.byteLength) return undefined;
  const descriptor = bytes[position]!;
  position += 1;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const reserved = (descriptor & 0x08) !== 0;
  const checksum = (descriptor & 0x04) !== 0;
  const dictionaryIdBytes = DICTIONARY_ID_BYTES[descriptor & 0x03]!;
  if (reserved) return undefined;
  let windowBytes = 0;
  if (!singleSegment) {
    if (position >= bytes.byteLength) return undefined;
    const windowDescriptor = bytes[position]!;
    position += 1;
    const windowBase = 2 ** (WINDOW_LOG_MIN + (windowDescriptor >> 3));
    windowBytes = windowBase + (windowBase / 8) * (windowDescriptor & 0x07);
  }
  // A dictionary is never used by QEMU and its decoder has none: such a frame cannot decode.
  if (position + dictionaryIdBytes > bytes.byteLength) return undefined;
  if (dictionaryIdBytes !== 0 && uintLe(bytes, position, dictionaryIdBytes) !== 0) return undefined;
  position += dictionaryIdBytes;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : FCS_FIELD_BYTES[fcsFlag]!;
  if (position + fcsBytes > bytes.byteLength) return undefined;
  let contentBytes: number | undefined;
  if (fcsBytes > 0) contentBytes = uintLe(bytes, position, fcsBytes) + (fcsBytes === 2 ? FCS_TWO_BYTE_BIAS : 0);
  position += fcsBytes;
  if (singleSegment) windowBytes = contentBytes!;
  const blockBytesMax = Math.min(windowBytes, ZSTD_BLOCK_BYTES_MAX);
  const blocks = walkBlocks(bytes, position, blockBytesMax);
  if (blocks === undefined) return undefined;
  const end = blocks.endBytes + (checksum ? CHECKSUM_BYTES : 0);
  if (end > bytes.byteLength) return undefined;
  return { startBytes: start, endBytes: end, skippable: false, contentBytes, outputBytesMax: blocks.outputBytesMax };
}

function walkBlocks(bytes: Uint8Array, start: number, blockBytesMax: number): { endBytes: number; outputBytesMax: number } | undefined {
  let position = start;
  let outputBytesMax = 0;
  for (;;) {
    if (position + BLOCK_HEADER_BYTES > bytes.byteLength) return undefined;
    const header = uintLe(bytes, position, BLOCK_HEADER_BYTES);
    position += BLOCK_HEADER_BYTES;
    const last = (header & 1) !== 0;
    const type = (header >> 1) & 0x03;
    const size = header >>> 3;
    if (type === BLOCK_TYPE_RAW) {
      position += size;
      outputBytesMax += size;
    } else if (type === BLOCK_TYPE_RLE) {
      position += 1;
      outputBytesMax += size;
    } else if (type === BLOCK_TYPE_COMPRESSED) {
      position += size;
      outputBytesMax += blockBytesMax;
    } else {
      return undefined;
    }
    if (position > bytes.byteLength) return undefined;
    if (last) return { endBytes: position, outputBytesMax };
  }
}
