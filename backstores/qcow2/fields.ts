// Big-endian field readers for qcow and qcow2 metadata (both formats are big-endian on disk).
// 64-bit fields are read as hi/lo u32 words so no BigInt is made on the data path; a value is
// turned into a number only after checking it is below 2^53, where a double is still exact.

/** Every offset and size this reader works with stays below 2^53 (Number.MAX_SAFE_INTEGER + 1). */
export const NUMBER_LIMIT = 2 ** 53;
const WORD = 0x1_0000_0000;
/** hi words at or above this make a 64-bit value ≥ 2^53. */
const HI_WORD_LIMIT = NUMBER_LIMIT / WORD;

export function u8(bytes: Uint8Array, offset: number): number {
  return bytes[offset]!;
}

export function u16be(view: DataView, offset: number): number {
  return view.getUint16(offset, false);
}

export function u32be(view: DataView, offset: number): number {
  return view.getUint32(offset, false);
}

/** The high word (bits 32..63) of a big-endian u64. */
export function u64beHi(view: DataView, offset: number): number {
  return view.getUint32(offset, false);
}

/** The low word (bits 0..31) of a big-endian u64. */
export function u64beLo(view: DataView, offset: number): number {
  return view.getUint32(offset + 4, false);
}

/** A u64 as an exact BigInt, for messages and for fields that may legitimately exceed 2^53. */
export function u64beBig(view: DataView, offset: number): bigint {
  return view.getBigUint64(offset, false);
}

/** hi/lo words as a number, or undefined when the value is 2^53 or more. */
export function wordsToNumber(hi: number, lo: number): number | undefined {
  if (hi >= HI_WORD_LIMIT) return undefined;
  return hi * WORD + lo;
}

/** A u64 as a number, or undefined when it is 2^53 or more. */
export function u64beNumber(view: DataView, offset: number): number | undefined {
  return wordsToNumber(u64beHi(view, offset), u64beLo(view, offset));
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}

/** "64 KiB", "2 MiB", "512 B": cluster sizes and limits in messages. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && value % 1024 === 0 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value} ${units[unit]}`;
}
