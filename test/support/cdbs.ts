// CDB builders for tests: big-endian fields, as an initiator would send them.

export function read10(lba: number, blocks: number, flags = 0): Uint8Array {
  const cdb = new Uint8Array(10);
  cdb[0] = 0x28;
  cdb[1] = flags;
  new DataView(cdb.buffer).setUint32(2, lba);
  new DataView(cdb.buffer).setUint16(7, blocks);
  return cdb;
}

export function write10(lba: number, blocks: number, flags = 0): Uint8Array {
  const cdb = read10(lba, blocks, flags);
  cdb[0] = 0x2a;
  return cdb;
}

export function read16(lba: number | bigint, blocks: number, flags = 0): Uint8Array {
  const cdb = new Uint8Array(16);
  cdb[0] = 0x88;
  cdb[1] = flags;
  new DataView(cdb.buffer).setBigUint64(2, BigInt(lba));
  new DataView(cdb.buffer).setUint32(10, blocks);
  return cdb;
}

export function write16(lba: number | bigint, blocks: number, flags = 0): Uint8Array {
  const cdb = read16(lba, blocks, flags);
  cdb[0] = 0x8a;
  return cdb;
}

export function inquiry(allocationLength: number, evpd = false, page = 0): Uint8Array {
  return Uint8Array.from([0x12, evpd ? 1 : 0, page, allocationLength >> 8, allocationLength & 0xff, 0]);
}

export function readCapacity10(): Uint8Array {
  return new Uint8Array([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

export function readCapacity16(allocationLength = 32): Uint8Array {
  const cdb = new Uint8Array(16);
  cdb[0] = 0x9e;
  cdb[1] = 0x10;
  new DataView(cdb.buffer).setUint32(10, allocationLength);
  return cdb;
}

export const TEST_UNIT_READY = new Uint8Array(6);

/** Deterministic bytes from a seed (xorshift32), for data patterns. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index += 1) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

/** (key, asc, ascq) of fixed- or descriptor-format sense. */
export function senseTriple(sense: Uint8Array): [number, number, number] {
  if ((sense[0]! & 0x7f) === 0x72) return [sense[1]! & 0xf, sense[2]!, sense[3]!];
  return [sense[2]! & 0xf, sense[12]!, sense[13]!];
}
