// test/ring/concurrency.test.ts and million.test.ts held per worker: the same promises for a
// device served by a data-plane worker thread, its commands running in the worker's batches and
// its store's operations finishing out of order in the worker's rounds (scripted-worker-store.ts):
// out-of-order completion under load, COMPARE AND WRITE atomic against concurrent commands, FUA
// and SYNCHRONIZE CACHE ordering, and no lost, duplicated or misdirected completion over 10^6
// commands of random sizes.
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import type { Completion } from "../../src/sim/kernel-sim.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { cdbs as scsiCdbs } from "../scsi/helpers.ts";
import { issueFuaWorkload } from "../ring/fua-workload.ts";
import { Prng } from "../ring/scripted-backstore.ts";
import { sharedImage } from "./scripted-worker-store.ts";

const log = { info: () => {}, warn: () => {}, error: () => {} };
const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 2 }, log);
const images: string[] = [];
afterAll(() => {
  pool.stop();
  for (const path of images) rmSync(path, { force: true });
});

const BLOCK_BYTES = 512;
const SIZE_BYTES = 16 * 1024 * 1024;
const SENSE_KEY_MISCOMPARE = 0x0e;
const SCRIPTED_STORE = new URL("./scripted-worker-store.ts", import.meta.url).href;
let imageCount = 0;

interface ScriptedDevice {
  device: SimWorkerDevice;
  /** What reads see, and what survives power loss: the store's images, mapped here too. */
  bytes: Uint8Array;
  durable: Uint8Array;
}

async function scriptedDevice(seed: number, writeCacheEnabled = true): Promise<ScriptedDevice> {
  const base = `/dev/shm/tcmu-worker-scripted-${process.pid}-${imageCount++}`;
  images.push(`${base}.bytes`, `${base}.durable`);
  const bytes = sharedImage(`${base}.bytes`, SIZE_BYTES);
  const durable = sharedImage(`${base}.durable`, SIZE_BYTES);
  const device = await SimWorkerDevice.attach(pool, {
    openerModule: SCRIPTED_STORE,
    configPath: `scripted:${seed}:${base}.bytes:${base}.durable`,
    sizeBytes: SIZE_BYTES,
    writeCacheEnabled,
    hwMaxSectors: 256,
    sim: { ringAreaBytes: 64 * 1024, dataBlockCount: 2048 },
  });
  return { device, bytes, durable };
}

describe("out-of-order completion under load", () => {
  test("4000 commands of random sizes, at most 48 in flight, complete out of order and read back what was written", async () => {
    const { device, bytes } = await scriptedDevice(5);
    try {
      const prng = new Prng(5);
      const order: number[] = [];
      const inFlight = new Set<Promise<void>>();
      // Each region of 64 blocks has one command at a time, so what a read must return is known.
      const REGIONS = 512;
      const written = new Map<number, Uint8Array>();
      const busy = new Set<number>();
      // Writes the region's first `blocks` blocks; the region's image is the old one with those replaced.
      const writeHead = (region: number, lba: number, blocks: number, before: Uint8Array, sequence: number) => {
        const image = Uint8Array.from(before);
        image.set(cdbs.patternBytes(blocks * BLOCK_BYTES, sequence + 1), 0);
        return device.submit(cdbs.write16(lba, blocks), { dataOut: image.subarray(0, blocks * BLOCK_BYTES) }).then((reply) => {
          expect(reply.status).toBe(0);
          written.set(region, image);
        });
      };
      for (let sequence = 0; sequence < 4000; sequence += 1) {
        let region = prng.below(REGIONS);
        while (busy.has(region)) region = (region + 1) % REGIONS;
        busy.add(region);
        const blocks = 1 + prng.below(64);
        const lba = region * 64;
        const known = written.get(region);
        const isRead = known !== undefined && prng.below(2) === 0;
        const done = (isRead
          ? device.submit(cdbs.read16(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES }).then((reply) => {
            expect(reply.status).toBe(0);
            expect(Buffer.compare(reply.dataIn, known.subarray(0, blocks * BLOCK_BYTES))).toBe(0);
          })
          : writeHead(region, lba, blocks, known ?? new Uint8Array(64 * BLOCK_BYTES), sequence)
        ).then(() => {
          order.push(sequence);
          busy.delete(region);
        });
        const tracked: Promise<void> = done.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        if (inFlight.size >= 48) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      expect(order.length).toBe(4000);
      let inversions = 0;
      for (let index = 1; index < order.length; index += 1) if (order[index]! < order[index - 1]!) inversions += 1;
      expect(inversions).toBeGreaterThan(100);
      for (const [region, data] of written) {
        expect(Buffer.compare(bytes.subarray(region * 64 * BLOCK_BYTES, (region + 1) * 64 * BLOCK_BYTES), data)).toBe(0);
      }
      await Bun.sleep(20);
      expect(device.engine.inFlightCount).toBe(0);
    } finally {
      await device.detach();
    }
  }, 30_000);
});

describe("COMPARE AND WRITE under concurrent commands", () => {
  const lba = 100;
  for (const seed of [11, 12, 13]) {
    test(`of eight that expect the same blocks exactly one succeeds, and concurrent reads never see a torn value (seed ${seed})`, async () => {
      const { device, bytes } = await scriptedDevice(seed);
      try {
        const initial = cdbs.patternBytes(4 * BLOCK_BYTES, seed);
        bytes.set(initial, lba * BLOCK_BYTES);
        const candidates = Array.from({ length: 8 }, (_, index) => cdbs.patternBytes(4 * BLOCK_BYTES, seed * 10 + index + 1));
        const attempts = candidates.map((next) => {
          const dataOut = new Uint8Array(8 * BLOCK_BYTES);
          dataOut.set(initial, 0);
          dataOut.set(next, 4 * BLOCK_BYTES);
          return device.submit(scsiCdbs.compareAndWrite(lba, 4), { dataOut });
        });
        const reads = Array.from({ length: 8 }, () => device.submit(cdbs.read16(lba, 4), { dataInBytes: 4 * BLOCK_BYTES }));
        const outcomes = await Promise.all(attempts);
        const winners = outcomes.flatMap((completion, index) => (completion.status === 0 ? [index] : []));
        expect(winners.length).toBe(1);
        for (const completion of outcomes) {
          if (completion.status !== 0) expect(cdbs.senseTriple(completion.sense)).toEqual([SENSE_KEY_MISCOMPARE, 0x1d, 0x00]);
        }
        expect(Buffer.compare(bytes.subarray(lba * BLOCK_BYTES, (lba + 4) * BLOCK_BYTES), candidates[winners[0]!]!)).toBe(0);
        const allowed = [initial, candidates[winners[0]!]!];
        for (const read of await Promise.all(reads)) expect(allowed.some((value) => Buffer.compare(read.dataIn, value) === 0)).toBe(true);
      } finally {
        await device.detach();
      }
    });
  }
});

describe("FUA and SYNCHRONIZE CACHE ordering", () => {
  for (const seed of [21, 22]) {
    test(`a FUA write completes durable; SYNCHRONIZE CACHE covers every write completed before it was issued (seed ${seed})`, async () => {
      const { device, durable } = await scriptedDevice(seed);
      try {
        const prng = new Prng(seed);
        // Let the worker run a while now and then, so some writes complete before later syncs.
        const workload = await issueFuaWorkload((cdb, options) => device.submit(cdb, options), durable, prng, seed, async () => {
          if (prng.below(4) === 0) await Bun.sleep(1);
        });
        await Promise.all(workload.pending);
        expect(workload.syncs).toBeGreaterThan(20);
        // The store really has a volatile cache: some completed writes were not durable yet.
        expect(workload.volatileSeen).toBeGreaterThan(0);
      } finally {
        await device.detach();
      }
    }, 20_000);
  }

  test("with the write cache off every write completes durable", async () => {
    const { device, durable } = await scriptedDevice(31, false);
    try {
      const pending = Array.from({ length: 100 }, (_, index) => {
        const data = cdbs.patternBytes(2 * BLOCK_BYTES, index + 1);
        return device.submit(cdbs.write10(index * 4, 2), { dataOut: data }).then((completion) => {
          expect(completion.status).toBe(0);
          expect(Buffer.compare(durable.subarray(index * 4 * BLOCK_BYTES, (index * 4 + 2) * BLOCK_BYTES), data)).toBe(0);
        });
      });
      await Promise.all(pending);
    } finally {
      await device.detach();
    }
  });
});

describe("no lost, duplicated or misdirected completion", () => {
  test("10^6 commands of random sizes over two devices on two workers all complete, each with its own data", async () => {
    const COMMANDS_PER_DEVICE = 500_000;
    const QUEUE_DEPTH = 64;
    /** 16-block regions; one command per region at a time, so each read knows what it must see. */
    const REGIONS = 2048;
    const devices = await Promise.all([0, 1].map(() => SimWorkerDevice.attach(pool, { sizeBytes: REGIONS * 16 * BLOCK_BYTES, sim: { dataBlockCount: 1024 } })));
    try {
      expect(devices[0]!.worker).not.toBe(devices[1]!.worker);
      const run = async (device: SimWorkerDevice, seed: number) => {
        const prng = new Prng(seed);
        // Region r holds stamp[r] in its first 4 bytes of every block written; reads check it.
        const stamp = new Uint32Array(REGIONS);
        const busy = new Uint8Array(REGIONS);
        const inFlight = new Set<Promise<void>>();
        let mismatches = 0;
        let failures = 0;
        for (let sequence = 1; sequence <= COMMANDS_PER_DEVICE; sequence += 1) {
          let region = prng.below(REGIONS);
          while (busy[region] === 1) region = (region + 1) % REGIONS;
          busy[region] = 1;
          const blocks = 1 + prng.below(16);
          const lba = region * 16;
          let done: Promise<Completion>;
          const expected = stamp[region]!;
          const isRead = expected !== 0 && prng.below(2) === 0;
          if (isRead) {
            done = device.submit(cdbs.read10(lba, blocks), { dataInBytes: blocks * BLOCK_BYTES });
          } else {
            const data = new Uint8Array(16 * BLOCK_BYTES);
            const view = new DataView(data.buffer);
            for (let block = 0; block < 16; block += 1) view.setUint32(block * BLOCK_BYTES, sequence);
            // A write covers the whole region so every block carries the new stamp.
            done = device.submit(cdbs.write10(lba, 16), { dataOut: data });
          }
          const settled: Promise<void> = done.then((reply) => {
            if (reply.status !== 0) failures += 1;
            else if (isRead) {
              const view = new DataView(reply.dataIn.buffer, reply.dataIn.byteOffset);
              for (let block = 0; block < blocks; block += 1) if (view.getUint32(block * BLOCK_BYTES) !== expected) mismatches += 1;
            } else stamp[region] = sequence;
            busy[region] = 0;
            inFlight.delete(settled);
          });
          inFlight.add(settled);
          if (inFlight.size >= QUEUE_DEPTH) await Promise.race(inFlight);
        }
        await Promise.all(inFlight);
        return { mismatches, failures };
      };
      const results = await Promise.all(devices.map((device, index) => run(device, 1000 + index)));
      expect(results).toEqual([{ mismatches: 0, failures: 0 }, { mismatches: 0, failures: 0 }]);
      await Bun.sleep(20);
      for (const device of devices) {
        expect(device.sim.broken).toBe(false);
        expect(device.engine.counters.commands).toBe(COMMANDS_PER_DEVICE);
        expect(device.engine.inFlightCount).toBe(0);
      }
    } finally {
      for (const device of devices) await device.detach();
    }
  }, 120_000);
});
