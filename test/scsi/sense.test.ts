import { describe, expect, test } from "bun:test";
import {
  FIXED_SENSE_LENGTH,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  MISCOMPARE_DURING_VERIFY,
  SENSE_LENGTH_MAX,
  SENSE_REASONS,
  buildSense,
} from "../../src/scsi/sense.ts";
import { parseSense } from "./helpers.ts";

describe("buildSense", () => {
  test("fixed format carries key, ASC/ASCQ and a VALID INFORMATION field that fits 32 bits", () => {
    const target = new Uint8Array(96).fill(0xee);
    const length = buildSense(target, LBA_OUT_OF_RANGE, false, { information: 0x1234_5678 });
    expect(length).toBe(FIXED_SENSE_LENGTH);
    expect(target[0]).toBe(0xf0);
    expect(parseSense(target)).toMatchObject({ format: "fixed", key: 5, asc: 0x21, ascq: 0, information: 0x1234_5678n });
    expect(target.subarray(length).every((byte) => byte === 0)).toBe(true);
  });

  test("fixed format leaves VALID at zero when INFORMATION does not fit 4 bytes", () => {
    const target = new Uint8Array(96);
    buildSense(target, LBA_OUT_OF_RANGE, false, { information: 2 ** 40 });
    expect(target[0]).toBe(0x70);
    expect(parseSense(target).information).toBeUndefined();
  });

  test("descriptor format carries a 64-bit INFORMATION descriptor, bigint included", () => {
    const target = new Uint8Array(96);
    buildSense(target, LBA_OUT_OF_RANGE, true, { information: 0xffff_ffff_ffff_fff0n });
    expect(parseSense(target)).toMatchObject({ format: "descriptor", key: 5, asc: 0x21, information: 0xffff_ffff_ffff_fff0n });
    buildSense(target, MISCOMPARE_DURING_VERIFY, true, { information: 2 ** 40 + 3 });
    expect(parseSense(target).information).toBe(BigInt(2 ** 40 + 3));
  });

  test("the sense key specific field pointer names byte, bit and CDB or parameter list, in both formats", () => {
    for (const descriptor of [false, true]) {
      const target = new Uint8Array(96);
      buildSense(target, INVALID_FIELD_IN_PARAMETER_LIST, descriptor, { field: { inCdb: false, byte: 300, bit: 5 } });
      expect(parseSense(target).field).toEqual({ inCdb: false, byte: 300, bit: 5 });
      buildSense(target, INVALID_FIELD_IN_PARAMETER_LIST, descriptor, { field: { inCdb: true, byte: 2 } });
      expect(parseSense(target).field).toEqual({ inCdb: true, byte: 2, bit: undefined });
    }
  });

  test("the longest sense fits SENSE_LENGTH_MAX and the 96-byte TCMU buffer", () => {
    const target = new Uint8Array(96);
    const length = buildSense(target, LBA_OUT_OF_RANGE, true, { information: 1, field: { inCdb: true, byte: 1 } });
    expect(length).toBe(SENSE_LENGTH_MAX);
    expect(parseSense(target).lengthBytes).toBe(length);
  });

  test("every named reason has a distinct (key, ASC, ASCQ)", () => {
    const triples = SENSE_REASONS.map((reason) => `${reason.key}/${reason.asc}/${reason.ascq}`);
    expect(new Set(triples).size).toBe(triples.length);
  });
});
