import { afterEach, describe, expect, test } from "bun:test";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  LBA_OUT_OF_RANGE,
  MISCOMPARE_DURING_VERIFY,
  WRITE_PROTECTED,
} from "../../src/scsi/sense.ts";
import type { Completion } from "../../src/sim/kernel-sim.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { GatedBackstore, MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, pattern, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const BLOCKS = SIZE / 512;

const concat = (...parts: Uint8Array[]) => {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
};

describe("COMPARE AND WRITE", () => {
  test("writes the second half when the first half matches the medium", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE, scsi: { writeCacheEnabled: true } });
    const old = pattern(1024, 1);
    const next = pattern(1024, 2);
    store.poke((BLOCKS - 2) * 512, old);
    expectGood(await device.submit(cdbs.compareAndWrite(BLOCKS - 2, 2, 0x08), { dataOut: concat(old, next) }));
    expect(store.peek((BLOCKS - 2) * 512, 1024)).toEqual(next);
    expect(store.writes.at(-1)?.durable).toBe(true);
  });

  test("a difference is MISCOMPARE with the offset of the first differing byte, and nothing is written", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    const old = pattern(512, 1);
    store.poke(0, old);
    const expected = old.slice();
    expected[300] = expected[300]! ^ 0x10;
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(await d.submit(cdbs.compareAndWrite(0, 1), { dataOut: concat(expected, pattern(512, 9)) }), MISCOMPARE_DURING_VERIFY, {
        format,
        information: 300,
      });
    });
    expect(store.peek(0, 512)).toEqual(old);
    expect(store.writes).toEqual([]);
  });

  test("zero blocks compares and writes nothing and is GOOD", async () => {
    const store = new MemoryBackstore(SIZE);
    device = simDevice({ backstore: store, sizeBytes: SIZE });
    expectGood(await device.submit(cdbs.compareAndWrite(5, 0)));
    expect(store.writes).toEqual([]);
  });

  test("rejects more blocks than VPD B0 allows, protection, ranges, short Data-Out and read-only stores", async () => {
    device = simDevice({ sizeBytes: SIZE, scsi: { maxTransferBlocks: 8 } });
    const d = device;
    await inBothSenseFormats(d, async (format) => {
      expectCheck(
        await d.submit(cdbs.compareAndWrite(0, 5), { dataOut: new Uint8Array(10 * 512) }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 13 } },
      );
      expectCheck(
        await d.submit(cdbs.compareAndWrite(0, 1, 0x20), { dataOut: new Uint8Array(1024) }),
        INVALID_FIELD_IN_CDB,
        { format, field: { inCdb: true, byte: 1, bit: 7 } },
      );
      expectCheck(
        await d.submit(cdbs.compareAndWrite(BLOCKS, 1), { dataOut: new Uint8Array(1024) }),
        LBA_OUT_OF_RANGE,
        { format, information: BLOCKS },
      );
    });
    expectCheck(await d.submit(cdbs.compareAndWrite(0, 1), { dataOut: new Uint8Array(512) }), INVALID_FIELD_IN_COMMAND_IU);
    d.scsi.close();
    await d.close();
    device = simDevice({ backstore: new MemoryBackstore(SIZE, { readOnly: true }), sizeBytes: SIZE });
    expectCheck(await device.submit(cdbs.compareAndWrite(0, 1), { dataOut: new Uint8Array(1024) }), WRITE_PROTECTED);
  });
});

describe("COMPARE AND WRITE atomicity against concurrent commands (slow asynchronous store)", () => {
  function gatedDevice() {
    const memory = new MemoryBackstore(SIZE);
    const gated = new GatedBackstore(memory);
    device = simDevice({ backstore: gated, sizeBytes: SIZE });
    return { memory, gated, d: device };
  }

  /** Settles a promise into a flag, to see whether a command finished yet. */
  function track(promise: Promise<Completion>) {
    const state = { done: false, completion: undefined as Completion | undefined };
    promise.then((completion) => {
      state.done = true;
      state.completion = completion;
    });
    return state;
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

  test("a WRITE in flight makes a later COMPARE AND WRITE wait, then compare against the new data", async () => {
    const { memory, gated, d } = gatedDevice();
    const old = pattern(512, 1);
    const written = pattern(512, 2);
    memory.poke(10 * 512, old);
    const write = track(d.submit(cdbs.write10(10, 1), { dataOut: written }));
    await gated.whenHeld(1);
    // The initiator still believes the block holds `old`: without the lock the compare would
    // read `old`, succeed, and its write would then be overwritten by the landing WRITE.
    const caw = track(d.submit(cdbs.compareAndWrite(10, 1), { dataOut: concat(old, pattern(512, 3)) }));
    await settle();
    expect(caw.done).toBe(false);
    expect(gated.heldWrites).toBe(1);
    gated.release();
    await settle();
    expect(write.done).toBe(true);
    expect(caw.done).toBe(true);
    expectCheck(caw.completion!, MISCOMPARE_DURING_VERIFY, { information: 0 });
    expect(memory.peek(10 * 512, 512)).toEqual(written);
  });

  test("a COMPARE AND WRITE in flight holds back an overlapping WRITE and READ until its write landed", async () => {
    const { memory, gated, d } = gatedDevice();
    const old = pattern(1024, 1);
    const swapped = pattern(1024, 2);
    const later = pattern(512, 3);
    memory.poke(20 * 512, old);
    const caw = track(d.submit(cdbs.compareAndWrite(20, 2), { dataOut: concat(old, swapped) }));
    await gated.whenHeld(1);
    const write = track(d.submit(cdbs.write10(21, 1), { dataOut: later }));
    const read = track(d.submit(cdbs.read10(20, 2), { dataInBytes: 1024 }));
    const elsewhere = track(d.submit(cdbs.write10(100, 1), { dataOut: later }));
    await settle();
    // The non-overlapping write got through to the store; the overlapping ones did not.
    expect(gated.heldWrites).toBe(2);
    expect(read.done).toBe(false);
    gated.release();
    await settle();
    expect(caw.done).toBe(true);
    expectGood(caw.completion!);
    expect(read.done).toBe(true);
    expect(read.completion!.dataIn).toEqual(swapped);
    await gated.whenHeld(2);
    gated.release();
    gated.release();
    await settle();
    expect(write.done && elsewhere.done).toBe(true);
    expect(memory.peek(20 * 512, 1024)).toEqual(concat(swapped.subarray(0, 512), later));
  });

  test("of two COMPARE AND WRITEs expecting the same old data, exactly one succeeds", async () => {
    const { memory, gated, d } = gatedDevice();
    const old = pattern(512, 1);
    memory.poke(0, old);
    const first = d.submit(cdbs.compareAndWrite(0, 1), { dataOut: concat(old, pattern(512, 2)) });
    const second = d.submit(cdbs.compareAndWrite(0, 1), { dataOut: concat(old, pattern(512, 3)) });
    await gated.whenHeld(1);
    gated.release();
    const results = await Promise.all([first, second]);
    expect(results.map((completion) => completion.status).sort()).toEqual([0, 2]);
    expect(memory.peek(0, 512)).toEqual(pattern(512, 2));
  });
});
