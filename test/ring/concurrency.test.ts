// Concurrency through the simulated ring, deterministic from seeds: commands run concurrently
// and complete out of order (a ScriptedBackstore lets operations finish in an order a PRNG
// picks), COMPARE AND WRITE stays atomic against concurrent writes, and FUA / SYNCHRONIZE CACHE
// keep their durability promise. The promise, as this appliance defines it:
//   - a write with FUA, or any write while WCE=0, completes only once it is durable;
//   - SYNCHRONIZE CACHE completes only once every write that had completed when it was issued
//     is durable (writes still in flight when it is issued are not covered, as in SBC-3 5.22).
import { afterEach, describe, expect, test } from "bun:test";
import { SimDevice, type SimDeviceOptions } from "../../src/sim/sim-device.ts";
import type { Completion } from "../../src/sim/kernel-sim.ts";
import * as cdbs from "../support/cdbs.ts";
import { cdbs as scsiCdbs } from "../scsi/helpers.ts";
import { issueFuaWorkload } from "./fua-workload.ts";
import { Prng, ScriptedBackstore, tick } from "./scripted-backstore.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 16 * 1024 * 1024;
const SENSE_KEY_MISCOMPARE = 0x0e;

const devices: SimDevice[] = [];
afterEach(async () => {
  for (const device of devices.splice(0)) await device.close();
});

function deviceOver(store: ScriptedBackstore, options: Partial<SimDeviceOptions> = {}): SimDevice {
  const device = new SimDevice({
    backstore: store,
    sizeBytes: SIZE_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    sim: { ringAreaBytes: 64 * 1024, dataBlockCount: 2048 },
    scsi: { writeCacheEnabled: true, maxTransferBlocks: 256 },
    ...options,
  });
  devices.push(device);
  return device;
}

/** Runs scripted operations in PRNG order until every promise in `pending` has settled. */
async function drive(store: ScriptedBackstore, prng: Prng, pending: Promise<unknown>[]): Promise<void> {
  let settled = false;
  const all = Promise.all(pending).finally(() => (settled = true));
  for (let steps = 0; !settled; steps += 1) {
    if (steps > 1_000_000) throw new Error("no progress: commands never completed");
    await tick();
    const runs = 1 + prng.below(4);
    for (let run = 0; run < runs; run += 1) store.runOne(prng);
  }
  await all;
}

describe("out-of-order completion", () => {
  for (const seed of [1, 2, 3]) {
    test(`2000 reads and writes at queue depth 64 over 16 slots complete out of order with their data intact (seed ${seed})`, async () => {
      const prng = new Prng(seed);
      const store = new ScriptedBackstore(SIZE_BYTES);
      const device = deviceOver(store, { engine: { slotCount: 16 } });
      const reference = new Uint8Array(SIZE_BYTES);
      const busy = new Set<number>(); // 64 KiB regions with a command in flight
      const completionOrder: number[] = [];
      let issued = 0;
      let outstanding = 0;
      const all: Promise<void>[] = [];

      const issue = (sequence: number): Promise<void> | undefined => {
        const region = prng.below(SIZE_BYTES / 65536);
        if (busy.has(region)) return undefined;
        busy.add(region);
        const blocks = 1 + prng.below(128);
        const lba = region * 128 + prng.below(128 - blocks + 1);
        const write = prng.below(2) === 0;
        const data = write ? cdbs.patternBytes(blocks * BLOCK_BYTES, seed * 100_000 + sequence) : undefined;
        outstanding += 1;
        const submitted = write
          ? device.submit(cdbs.write16(lba, blocks), { dataOut: data! })
          : device.submit(cdbs.read16(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
        return submitted.then((completion: Completion) => {
          expect(completion.status).toBe(0);
          const range = reference.subarray(lba * BLOCK_BYTES, (lba + blocks) * BLOCK_BYTES);
          if (write) range.set(data!);
          else expect(Buffer.compare(completion.dataIn, range)).toBe(0);
          completionOrder.push(sequence);
          busy.delete(region);
          outstanding -= 1;
        });
      };

      while (issued < 2000 || outstanding > 0) {
        while (issued < 2000 && outstanding < 64) {
          const next = issue(issued);
          if (next === undefined) break;
          all.push(next);
          issued += 1;
        }
        await tick();
        for (let run = 1 + prng.below(6); run > 0; run -= 1) store.runOne(prng);
      }
      await Promise.all(all);

      const inversions = completionOrder.filter((sequence, index) => index > 0 && sequence < completionOrder[index - 1]!).length;
      expect(completionOrder.length).toBe(2000);
      expect(inversions).toBeGreaterThan(200);
      expect(device.engine.counters.throttled).toBeGreaterThan(0);
      expect(device.engine.inFlightCount).toBe(0);
      expect(device.sim.broken).toBe(false);
      expect(device.sim.tailOffset).toBe(device.sim.headOffset);
    });
  }
});

describe("COMPARE AND WRITE under concurrent commands", () => {
  const lba = 100;
  const compareAndWrite = (expected: Uint8Array, next: Uint8Array) => {
    const dataOut = new Uint8Array(expected.byteLength * 2);
    dataOut.set(expected, 0);
    dataOut.set(next, expected.byteLength);
    return { cdb: scsiCdbs.compareAndWrite(lba, expected.byteLength / BLOCK_BYTES), dataOut };
  };

  for (const seed of [11, 12, 13, 14, 15]) {
    test(`of eight that expect the same blocks exactly one succeeds, and concurrent reads never see a torn value (seed ${seed})`, async () => {
      const prng = new Prng(seed);
      const store = new ScriptedBackstore(SIZE_BYTES);
      const device = deviceOver(store);
      const initial = cdbs.patternBytes(4 * BLOCK_BYTES, seed);
      store.bytes.set(initial, lba * BLOCK_BYTES);
      const candidates = Array.from({ length: 8 }, (_, index) => cdbs.patternBytes(4 * BLOCK_BYTES, seed * 10 + index + 1));
      const attempts = candidates.map((next) => {
        const { cdb, dataOut } = compareAndWrite(initial, next);
        return device.submit(cdb, { dataOut });
      });
      const reads = Array.from({ length: 8 }, () => device.submit(cdbs.read16(lba, 4), { dataInBytes: 4 * BLOCK_BYTES }));
      await drive(store, prng, [...attempts, ...reads]);

      const outcomes = await Promise.all(attempts);
      const winners = outcomes.flatMap((completion, index) => (completion.status === 0 ? [index] : []));
      expect(winners.length).toBe(1);
      for (const completion of outcomes) {
        if (completion.status !== 0) expect(cdbs.senseTriple(completion.sense)).toEqual([SENSE_KEY_MISCOMPARE, 0x1d, 0x00]);
      }
      const final = store.bytes.subarray(lba * BLOCK_BYTES, (lba + 4) * BLOCK_BYTES);
      expect(Buffer.compare(final, candidates[winners[0]!]!)).toBe(0);
      const allowed = [initial, candidates[winners[0]!]!];
      for (const read of await Promise.all(reads)) expect(allowed.some((value) => Buffer.compare(read.dataIn, value) === 0)).toBe(true);
    });

    test(`a WRITE into the middle of its range is never lost to a concurrent COMPARE AND WRITE (seed ${seed})`, async () => {
      const prng = new Prng(seed);
      const store = new ScriptedBackstore(SIZE_BYTES);
      const device = deviceOver(store);
      const initial = cdbs.patternBytes(4 * BLOCK_BYTES, seed);
      store.bytes.set(initial, lba * BLOCK_BYTES);
      const middle = cdbs.patternBytes(BLOCK_BYTES, seed + 1000);
      const { cdb, dataOut } = compareAndWrite(initial, cdbs.patternBytes(4 * BLOCK_BYTES, seed + 2000));
      // Either order is legal; what must never happen is CAW reading, WRITE landing, CAW writing.
      const order = prng.below(2);
      const pending =
        order === 0
          ? [device.submit(cdb, { dataOut }), device.submit(cdbs.write16(lba + 2, 1), { dataOut: middle })]
          : [device.submit(cdbs.write16(lba + 2, 1), { dataOut: middle }), device.submit(cdb, { dataOut })];
      await drive(store, prng, pending);
      for (const completion of await Promise.all(pending)) {
        if (completion.status !== 0) expect(cdbs.senseTriple(completion.sense)[0]).toBe(SENSE_KEY_MISCOMPARE);
      }
      expect(Buffer.compare(store.bytes.subarray((lba + 2) * BLOCK_BYTES, (lba + 3) * BLOCK_BYTES), middle)).toBe(0);
    });
  }
});

describe("FUA and SYNCHRONIZE CACHE ordering", () => {
  for (const seed of [21, 22, 23, 24]) {
    test(`a FUA write completes durable; SYNCHRONIZE CACHE covers every write completed before it was issued (seed ${seed})`, async () => {
      const prng = new Prng(seed);
      const store = new ScriptedBackstore(SIZE_BYTES);
      const device = deviceOver(store);
      const workload = await issueFuaWorkload((cdb, options) => device.submit(cdb, options), store.durable, prng, seed, async () => {
        await tick();
        for (let run = prng.below(3); run > 0; run -= 1) store.runOne(prng);
      });
      await drive(store, prng, workload.pending);
      expect(workload.syncs).toBeGreaterThan(20);
      // The model really has a volatile cache: some completed writes were not durable yet.
      expect(workload.volatileSeen).toBeGreaterThan(0);
    });
  }

  test("with the write cache off every write completes durable", async () => {
    const prng = new Prng(31);
    const store = new ScriptedBackstore(SIZE_BYTES);
    const device = deviceOver(store, { scsi: { writeCacheEnabled: false, maxTransferBlocks: 256 } });
    const pending = Array.from({ length: 100 }, (_, index) => {
      const data = cdbs.patternBytes(2 * BLOCK_BYTES, index + 1);
      return device.submit(cdbs.write10(index * 4, 2), { dataOut: data }).then((completion) => {
        expect(completion.status).toBe(0);
        expect(Buffer.compare(store.durable.subarray(index * 4 * BLOCK_BYTES, (index * 4 + 2) * BLOCK_BYTES), data)).toBe(0);
      });
    });
    await drive(store, prng, pending);
  });
});
