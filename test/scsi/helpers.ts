// Shared by the SCSI tests: CDB builders for every command served (big-endian fields, as an
// initiator sends them), parameter list builders, and a sense parser that checks the sense is
// well formed while it reads it.
import { expect } from "bun:test";
import type { Completion } from "../../src/sim/kernel-sim.ts";
import { SimDevice, type SimDeviceOptions } from "../../src/sim/sim-device.ts";
import type { SenseReason } from "../../src/scsi/sense.ts";

export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;

interface StartStopOptions {
  immed?: boolean;
  loej?: boolean;
  noFlush?: boolean;
  powerCondition?: number;
  modifier?: number;
}

function cdbOf(length: number, fill: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = new Uint8Array(length);
  fill(new DataView(bytes.buffer), bytes);
  return bytes;
}

const u64 = (view: DataView, at: number, value: number | bigint) => view.setBigUint64(at, BigInt(value));

/** 10-byte LBA/length CDB: LBA 2..5, length 7..8. */
export function cdb10(opcode: number, lba: number, blocks: number, byte1 = 0): Uint8Array {
  return cdbOf(10, (view, bytes) => {
    bytes[0] = opcode;
    bytes[1] = byte1;
    view.setUint32(2, lba);
    view.setUint16(7, blocks);
  });
}

/** 16-byte LBA/length CDB: LBA 2..9, length 10..13. */
export function cdb16(opcode: number, lba: number | bigint, blocks: number, byte1 = 0): Uint8Array {
  return cdbOf(16, (view, bytes) => {
    bytes[0] = opcode;
    bytes[1] = byte1;
    u64(view, 2, lba);
    view.setUint32(10, blocks);
  });
}

export const cdbs = {
  testUnitReady: () => new Uint8Array(6),
  requestSense: (allocation: number, descriptor = false) => Uint8Array.of(0x03, descriptor ? 1 : 0, 0, 0, allocation, 0),
  startStop: (start: boolean, options: StartStopOptions = {}) =>
    Uint8Array.of(
      0x1b,
      options.immed === false ? 0 : 1,
      0,
      options.modifier ?? 0,
      ((options.powerCondition ?? 0) << 4) | (options.noFlush ? 0x04 : 0) | (options.loej ? 0x02 : 0) | (start ? 0x01 : 0),
      0,
    ),
  preventAllow: (prevent: number) => Uint8Array.of(0x1e, 0, 0, 0, prevent, 0),
  inquiry: (allocation: number, evpd = false, page = 0, byte1Extra = 0) =>
    Uint8Array.of(0x12, (evpd ? 1 : 0) | byte1Extra, page, allocation >> 8, allocation & 0xff, 0),
  readCapacity10: (lba = 0, pmi = false) =>
    cdbOf(10, (view, bytes) => {
      bytes[0] = 0x25;
      view.setUint32(2, lba);
      bytes[8] = pmi ? 1 : 0;
    }),
  readCapacity16: (allocation = 32) =>
    cdbOf(16, (view, bytes) => {
      bytes[0] = 0x9e;
      bytes[1] = 0x10;
      view.setUint32(10, allocation);
    }),
  read6: (lba: number, blocks: number) => Uint8Array.of(0x08, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, blocks, 0),
  write6: (lba: number, blocks: number) => Uint8Array.of(0x0a, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, blocks, 0),
  read10: (lba: number, blocks: number, byte1 = 0) => cdb10(0x28, lba, blocks, byte1),
  write10: (lba: number, blocks: number, byte1 = 0) => cdb10(0x2a, lba, blocks, byte1),
  read12: (lba: number, blocks: number, byte1 = 0) =>
    cdbOf(12, (view, bytes) => {
      bytes[0] = 0xa8;
      bytes[1] = byte1;
      view.setUint32(2, lba);
      view.setUint32(6, blocks);
    }),
  write12: (lba: number, blocks: number, byte1 = 0) =>
    cdbOf(12, (view, bytes) => {
      bytes[0] = 0xaa;
      bytes[1] = byte1;
      view.setUint32(2, lba);
      view.setUint32(6, blocks);
    }),
  read16: (lba: number | bigint, blocks: number, byte1 = 0) => cdb16(0x88, lba, blocks, byte1),
  write16: (lba: number | bigint, blocks: number, byte1 = 0) => cdb16(0x8a, lba, blocks, byte1),
  verify10: (lba: number, blocks: number, byteCheck = 0) => cdb10(0x2f, lba, blocks, byteCheck << 1),
  verify16: (lba: number | bigint, blocks: number, byteCheck = 0) => cdb16(0x8f, lba, blocks, byteCheck << 1),
  writeAndVerify10: (lba: number, blocks: number, byteCheck = 0) => cdb10(0x2e, lba, blocks, byteCheck << 1),
  writeAndVerify16: (lba: number | bigint, blocks: number, byteCheck = 0) => cdb16(0x8e, lba, blocks, byteCheck << 1),
  syncCache10: (lba: number, blocks: number, immed = false) => cdb10(0x35, lba, blocks, immed ? 0x02 : 0),
  syncCache16: (lba: number | bigint, blocks: number, immed = false) => cdb16(0x91, lba, blocks, immed ? 0x02 : 0),
  preFetch10: (lba: number, blocks: number) => cdb10(0x34, lba, blocks),
  preFetch16: (lba: number | bigint, blocks: number) => cdb16(0x90, lba, blocks),
  writeSame10: (lba: number, blocks: number, byte1 = 0) => cdb10(0x41, lba, blocks, byte1),
  writeSame16: (lba: number | bigint, blocks: number, byte1 = 0) => cdb16(0x93, lba, blocks, byte1),
  unmap: (parameterListLength: number, anchor = false) =>
    cdbOf(10, (view, bytes) => {
      bytes[0] = 0x42;
      bytes[1] = anchor ? 1 : 0;
      view.setUint16(7, parameterListLength);
    }),
  getLbaStatus: (lba: number | bigint, allocation: number) =>
    cdbOf(16, (view, bytes) => {
      bytes[0] = 0x9e;
      bytes[1] = 0x12;
      u64(view, 2, lba);
      view.setUint32(10, allocation);
    }),
  compareAndWrite: (lba: number | bigint, blocks: number, byte1 = 0) =>
    cdbOf(16, (view, bytes) => {
      bytes[0] = 0x89;
      bytes[1] = byte1;
      u64(view, 2, lba);
      bytes[13] = blocks;
    }),
  modeSense6: (page: number, allocation: number, options: { pc?: number; dbd?: boolean; subpage?: number } = {}) =>
    Uint8Array.of(0x1a, options.dbd ? 0x08 : 0, ((options.pc ?? 0) << 6) | page, options.subpage ?? 0, allocation, 0),
  modeSense10: (page: number, allocation: number, options: { pc?: number; dbd?: boolean; llbaa?: boolean; subpage?: number } = {}) =>
    cdbOf(10, (view, bytes) => {
      bytes[0] = 0x5a;
      bytes[1] = (options.dbd ? 0x08 : 0) | (options.llbaa ? 0x10 : 0);
      bytes[2] = ((options.pc ?? 0) << 6) | page;
      bytes[3] = options.subpage ?? 0;
      view.setUint16(7, allocation);
    }),
  modeSelect6: (length: number, options: { pf?: boolean; sp?: boolean } = {}) =>
    Uint8Array.of(0x15, (options.pf === false ? 0 : 0x10) | (options.sp ? 1 : 0), 0, 0, length, 0),
  modeSelect10: (length: number, options: { pf?: boolean; sp?: boolean } = {}) =>
    cdbOf(10, (view, bytes) => {
      bytes[0] = 0x55;
      bytes[1] = (options.pf === false ? 0 : 0x10) | (options.sp ? 1 : 0);
      view.setUint16(7, length);
    }),
  reportOpcodes: (options: number, opcode = 0, serviceAction = 0, allocation = 8192, rctd = false) =>
    cdbOf(12, (view, bytes) => {
      bytes[0] = 0xa3;
      bytes[1] = 0x0c;
      bytes[2] = (rctd ? 0x80 : 0) | options;
      bytes[3] = opcode;
      view.setUint16(4, serviceAction);
      view.setUint32(6, allocation);
    }),
  reportTmfs: (allocation: number, repd = false) =>
    cdbOf(12, (view, bytes) => {
      bytes[0] = 0xa3;
      bytes[1] = 0x0d;
      bytes[2] = repd ? 0x80 : 0;
      view.setUint32(6, allocation);
    }),
  extendedCopy: (listLength: number) =>
    cdbOf(16, (view, bytes) => {
      bytes[0] = 0x83;
      view.setUint32(10, listLength);
    }),
  receiveCopyOperatingParameters: (allocation: number) =>
    cdbOf(16, (view, bytes) => {
      bytes[0] = 0x84;
      bytes[1] = 0x03;
      view.setUint32(10, allocation);
    }),
};

/** UNMAP parameter list (SBC-3 5.28.2) with the given [lba, blocks] descriptors. */
export function unmapList(descriptors: [number | bigint, number][], descriptorLengthOverride?: number): Uint8Array {
  const bytes = new Uint8Array(8 + 16 * descriptors.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, bytes.length - 2);
  view.setUint16(2, descriptorLengthOverride ?? 16 * descriptors.length);
  descriptors.forEach(([lba, blocks], index) => {
    u64(view, 8 + 16 * index, lba);
    view.setUint32(16 + 16 * index, blocks);
  });
  return bytes;
}

export interface CopySegmentSpec {
  source: number;
  destination: number;
  blocks: number;
  sourceLba: number | bigint;
  destinationLba: number | bigint;
}

/** EXTENDED COPY parameter list: E4h target descriptors for the NAAs, 02h segments. */
export function extendedCopyList(naas: Uint8Array[], segments: CopySegmentSpec[], diskBlockLength = 0): Uint8Array {
  const bytes = new Uint8Array(16 + 32 * naas.length + 28 * segments.length);
  const view = new DataView(bytes.buffer);
  bytes[1] = 0x18; // LIST ID USAGE 11b: no list identifier
  view.setUint16(2, 32 * naas.length);
  view.setUint32(8, 28 * segments.length);
  naas.forEach((naa, index) => {
    const at = 16 + 32 * index;
    bytes[at] = 0xe4;
    bytes[at + 4] = 0x01;
    bytes[at + 5] = 0x03;
    bytes[at + 7] = 16;
    bytes.set(naa, at + 8);
    bytes[at + 29] = (diskBlockLength >> 16) & 0xff;
    bytes[at + 30] = (diskBlockLength >> 8) & 0xff;
    bytes[at + 31] = diskBlockLength & 0xff;
  });
  segments.forEach((segment, index) => {
    const at = 16 + 32 * naas.length + 28 * index;
    bytes[at] = 0x02;
    view.setUint16(at + 2, 0x18);
    view.setUint16(at + 4, segment.source);
    view.setUint16(at + 6, segment.destination);
    view.setUint16(at + 10, segment.blocks);
    u64(view, at + 12, segment.sourceLba);
    u64(view, at + 20, segment.destinationLba);
  });
  return bytes;
}

export interface ParsedSense {
  format: "fixed" | "descriptor";
  key: number;
  asc: number;
  ascq: number;
  /** INFORMATION when VALID (fixed) or an information descriptor is present. */
  information: bigint | undefined;
  field: { inCdb: boolean; byte: number; bit: number | undefined } | undefined;
  lengthBytes: number;
}

/** Parses sense, asserting it is well formed (SPC-4 4.5): a test failure otherwise. */
export function parseSense(sense: Uint8Array): ParsedSense {
  const responseCode = sense[0]! & 0x7f;
  expect([0x70, 0x72]).toContain(responseCode);
  if (responseCode === 0x70) {
    expect(sense[7]).toBe(10);
    const valid = (sense[0]! & 0x80) !== 0;
    const sks = sense[15]!;
    return {
      format: "fixed",
      key: sense[2]! & 0x0f,
      asc: sense[12]!,
      ascq: sense[13]!,
      information: valid ? BigInt(new DataView(sense.buffer, sense.byteOffset).getUint32(3)) : undefined,
      field: (sks & 0x80) === 0 ? undefined : sksField(sense, 15),
      lengthBytes: 18,
    };
  }
  const additional = sense[7]!;
  let information: bigint | undefined;
  let field: ParsedSense["field"];
  let at = 8;
  while (at < 8 + additional) {
    const type = sense[at]!;
    const length = sense[at + 1]!;
    if (type === 0x00) {
      expect(length).toBe(0x0a);
      information = new DataView(sense.buffer, sense.byteOffset).getBigUint64(at + 4);
    } else if (type === 0x02) {
      expect(length).toBe(0x06);
      field = sksField(sense, at + 4);
    }
    at += 2 + length;
  }
  expect(at).toBe(8 + additional);
  return { format: "descriptor", key: sense[1]! & 0x0f, asc: sense[2]!, ascq: sense[3]!, information, field, lengthBytes: at };
}

function sksField(sense: Uint8Array, at: number): ParsedSense["field"] {
  const flags = sense[at]!;
  expect(flags & 0x80).toBe(0x80);
  return { inCdb: (flags & 0x40) !== 0, byte: (sense[at + 1]! << 8) | sense[at + 2]!, bit: (flags & 0x08) !== 0 ? flags & 0x07 : undefined };
}

export function expectGood(completion: Completion): void {
  if (completion.status !== GOOD) {
    const sense = parseSense(completion.sense);
    throw new Error(`expected GOOD, got CHECK CONDITION ${sense.key.toString(16)}/${sense.asc.toString(16)}/${sense.ascq.toString(16)}`);
  }
}

export interface ExpectedSense {
  information?: number | bigint;
  field?: { inCdb: boolean; byte: number; bit?: number };
  format?: "fixed" | "descriptor";
}

/** CHECK CONDITION with `reason`, well-formed sense, and the INFORMATION / field pointer given. */
export function expectCheck(completion: Completion, reason: SenseReason, expected: ExpectedSense = {}): ParsedSense {
  expect(completion.status).toBe(CHECK_CONDITION);
  const sense = parseSense(completion.sense);
  expect({ key: sense.key, asc: sense.asc, ascq: sense.ascq }).toEqual({ key: reason.key, asc: reason.asc, ascq: reason.ascq });
  if (expected.format !== undefined) expect(sense.format).toBe(expected.format);
  if (expected.information !== undefined) expect(sense.information).toBe(BigInt(expected.information));
  if (expected.field !== undefined) expect(sense.field).toEqual({ ...expected.field, bit: expected.field.bit });
  return sense;
}

/** Deterministic bytes (xorshift32). */
export function pattern(length: number, seed: number): Uint8Array {
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

/** A SimDevice of `sizeBytes` (default 8 MiB) whose serial is unique per test, so NAAs differ. */
let deviceCounter = 0;
export function simDevice(options: SimDeviceOptions = {}): SimDevice {
  deviceCounter += 1;
  const serial = `${(0x5000 + deviceCounter).toString(16)}abcdef-${process.pid.toString(16)}-test`;
  return new SimDevice({
    sizeBytes: 8 * 1024 * 1024,
    ...options,
    scsi: { identity: { vendor: "LIO-ORG", product: "tcmu-appliance", revision: "0001", unitSerial: serial }, ...options.scsi },
  });
}

/** Runs `body` once with fixed-format sense and once with descriptor-format sense. */
export async function inBothSenseFormats(device: SimDevice, body: (format: "fixed" | "descriptor") => Promise<void>): Promise<void> {
  device.scsi.descriptorSense = false;
  await body("fixed");
  device.scsi.descriptorSense = true;
  await body("descriptor");
  device.scsi.descriptorSense = false;
}

export const u32At = (bytes: Uint8Array, at: number) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(at);
export const u16At = (bytes: Uint8Array, at: number) => new DataView(bytes.buffer, bytes.byteOffset).getUint16(at);
export const u64At = (bytes: Uint8Array, at: number) => new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at);
