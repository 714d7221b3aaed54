// Named readers for CDB fields. CDBs are big-endian; each reader's name says width and place,
// following the kernel's transport_get_sectors_* helpers.

export function cdbU16(cdb: Uint8Array, at: number): number {
  return (cdb[at]! << 8) | cdb[at + 1]!;
}

export function cdbU24(cdb: Uint8Array, at: number): number {
  return (cdb[at]! << 16) | (cdb[at + 1]! << 8) | cdb[at + 2]!;
}

export function cdbU32(cdb: Uint8Array, at: number): number {
  return ((cdb[at]! << 24) | (cdb[at + 1]! << 16) | (cdb[at + 2]! << 8) | cdb[at + 3]!) >>> 0;
}

/** A 64-bit field as a number; values above 2^53 saturate to Infinity so range checks fail. */
export function cdbU64(cdb: Uint8Array, at: number): number {
  const high = cdbU32(cdb, at);
  const low = cdbU32(cdb, at + 4);
  if (high > 0x1f_ffff) return Number.POSITIVE_INFINITY;
  return high * 0x1_0000_0000 + low;
}

/** A 64-bit field exactly, for sense INFORMATION when the number form saturated. */
export function cdbU64Exact(cdb: Uint8Array, at: number): bigint {
  return (BigInt(cdbU32(cdb, at)) << 32n) | BigInt(cdbU32(cdb, at + 4));
}

// Parameter lists (Data-Out: UNMAP, MODE SELECT, EXTENDED COPY) are big-endian like CDBs; the
// same readers under names that say where the bytes come from.
export const paramU16 = cdbU16;
export const paramU32 = cdbU32;
export const paramU64 = cdbU64;

export function putU16(target: Uint8Array, at: number, value: number): void {
  target[at] = (value >>> 8) & 0xff;
  target[at + 1] = value & 0xff;
}

export function putU32(target: Uint8Array, at: number, value: number): void {
  target[at] = (value >>> 24) & 0xff;
  target[at + 1] = (value >>> 16) & 0xff;
  target[at + 2] = (value >>> 8) & 0xff;
  target[at + 3] = value & 0xff;
}

export function putU64(target: Uint8Array, at: number, value: number): void {
  putU32(target, at, Math.floor(value / 0x1_0000_0000));
  putU32(target, at + 4, value % 0x1_0000_0000);
}

/** Writes `text` space-padded to `width` bytes (SPC ASCII fields). */
export function putAscii(target: Uint8Array, at: number, width: number, text: string): void {
  for (let index = 0; index < width; index += 1) {
    const code = index < text.length ? text.charCodeAt(index) : 0x20;
    target[at + index] = code >= 0x20 && code < 0x7f ? code : 0x20;
  }
}

// READ(6)/WRITE(6): 21-bit LBA in bytes 1..3; transfer length 0 means 256 blocks (SBC-3 5.13).
export function lba6(cdb: Uint8Array): number {
  return cdbU24(cdb, 1) & 0x1f_ffff;
}
export function transferLength6(cdb: Uint8Array): number {
  return cdb[4] === 0 ? 256 : cdb[4]!;
}
// 10-byte: LBA bytes 2..5, length bytes 7..8.
export function lba10(cdb: Uint8Array): number {
  return cdbU32(cdb, 2);
}
export function transferLength10(cdb: Uint8Array): number {
  return cdbU16(cdb, 7);
}
// 12-byte: LBA bytes 2..5, length bytes 6..9.
export function lba12(cdb: Uint8Array): number {
  return cdbU32(cdb, 2);
}
export function transferLength12(cdb: Uint8Array): number {
  return cdbU32(cdb, 6);
}
// 16-byte: LBA bytes 2..9, length bytes 10..13.
export function lba16(cdb: Uint8Array): number {
  return cdbU64(cdb, 2);
}
export function transferLength16(cdb: Uint8Array): number {
  return cdbU32(cdb, 10);
}
