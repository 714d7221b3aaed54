import { describe, expect, test } from "bun:test";
import { cdbU64, cdbU64Exact, lba6, putAscii, putU64, transferLength6 } from "../../src/scsi/cdb.ts";
import { IoBuffer, firstDifference } from "../../src/scsi/io-buffer.ts";

describe("CDB field readers", () => {
  test("READ(6)/WRITE(6) take a 21-bit LBA and read a length of 0 as 256 blocks", () => {
    const cdb = Uint8Array.of(0x08, 0xff, 0x12, 0x34, 0, 0);
    expect(lba6(cdb)).toBe(0x1f1234);
    expect(transferLength6(cdb)).toBe(256);
    cdb[4] = 7;
    expect(transferLength6(cdb)).toBe(7);
  });

  test("a 64-bit field above 2^53 saturates to Infinity as a number and stays exact as a bigint", () => {
    const cdb = new Uint8Array(16);
    new DataView(cdb.buffer).setBigUint64(2, 2n ** 60n + 5n);
    expect(cdbU64(cdb, 2)).toBe(Number.POSITIVE_INFINITY);
    expect(cdbU64Exact(cdb, 2)).toBe(2n ** 60n + 5n);
    new DataView(cdb.buffer).setBigUint64(2, 2n ** 53n - 1n);
    expect(cdbU64(cdb, 2)).toBe(2 ** 53 - 1);
  });

  test("putU64 writes big-endian and putAscii pads with spaces and replaces non-printables", () => {
    const bytes = new Uint8Array(8);
    putU64(bytes, 0, 0x1_0203_0405);
    expect([...bytes]).toEqual([0, 0, 0, 1, 2, 3, 4, 5]);
    const text = new Uint8Array(6);
    putAscii(text, 0, 6, "a\u0001b");
    expect(new TextDecoder().decode(text)).toBe("a b   ");
  });
});

describe("IoBuffer", () => {
  test("is one segment over its own bytes, with a real address, and can be cut to a prefix", () => {
    const buffer = new IoBuffer(4096);
    expect(buffer.segments.totalBytes).toBe(4096);
    expect(buffer.segments.baseAddress).toBeGreaterThan(0);
    expect(buffer.prefix(512).totalBytes).toBe(512);
    expect(buffer.prefix(4096)).toBe(buffer.segments);
  });

  test("firstDifference finds the first differing byte, or -1", () => {
    const a = Uint8Array.of(1, 2, 3, 4);
    expect(firstDifference(a, a.slice())).toBe(-1);
    expect(firstDifference(a, Uint8Array.of(1, 2, 9, 9))).toBe(2);
  });
});
