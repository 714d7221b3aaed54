// The data plane end to end over the simulator: devices served by worker threads, each blocked
// in its own epoll_wait, with the control plane reaching them through the mailbox.
import { afterAll, expect, test } from "bun:test";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { SLOW_READ_MS } from "./slow-store.ts";

const log = { info: () => {}, warn: () => {}, error: () => {} };
const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 2 }, log);
afterAll(() => pool.stop());

const GOOD = 0;

test("a device on a worker reads back what it wrote, and its counters reach the control plane", async () => {
  const device = await SimWorkerDevice.attach(pool, { sizeBytes: 8 * 1024 * 1024 });
  try {
    const data = cdbs.patternBytes(64 * 1024, 7);
    const write = await device.submit(cdbs.write10(100, 128), { dataOut: data });
    expect(write.status).toBe(GOOD);
    const read = await device.submit(cdbs.read10(100, 128), { dataInBytes: data.length });
    expect(read.status).toBe(GOOD);
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    // Published after each round of the worker's loop.
    await Bun.sleep(20);
    expect(device.engine.counters.commands).toBe(2);
    expect(device.metrics.bytesRead).toBe(data.length);
    expect(device.metrics.bytesWritten).toBe(data.length);
    expect(device.engine.inFlightCount).toBe(0);
  } finally {
    await device.detach();
  }
});

test("devices are spread over the workers, and many commands in flight complete on each", async () => {
  const devices = await Promise.all([0, 1, 2, 3].map(() => SimWorkerDevice.attach(pool, { sizeBytes: 4 * 1024 * 1024, sim: { dataBlockCount: 2048 } })));
  try {
    expect(new Set(devices.map((device) => device.worker.index)).size).toBe(2);
    const runs = devices.map(async (device, index) => {
      const pending = [];
      for (let n = 0; n < 200; n += 1) {
        const lba = (n * 8) % 8000;
        const data = cdbs.patternBytes(4096, index * 1000 + n);
        pending.push(device.submit(cdbs.write10(lba, 8), { dataOut: data }).then(async (written) => {
          expect(written.status).toBe(GOOD);
          const read = await device.submit(cdbs.read10(lba, 8), { dataInBytes: 4096 });
          return read.status === GOOD && Buffer.from(read.dataIn).equals(Buffer.from(data));
        }));
        if (pending.length >= 32) await Promise.race(pending);
      }
      // Writes to one LBA race their reads only within one chain, so each chain checks its own.
      return (await Promise.all(pending)).every(Boolean);
    });
    expect(await Promise.all(runs)).toEqual([true, true, true, true]);
  } finally {
    for (const device of devices) await device.detach();
  }
});

test("a device whose store stalls does not stall a device on another worker", async () => {
  const slow = await SimWorkerDevice.attach(pool, { openerModule: new URL("./slow-store.ts", import.meta.url).href, sizeBytes: 1024 * 1024 });
  const fast = await SimWorkerDevice.attach(pool, { sizeBytes: 1024 * 1024 });
  try {
    expect(fast.worker).not.toBe(slow.worker);
    const startedMs = performance.now();
    const stalled = slow.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
    let fastCommands = 0;
    while (performance.now() - startedMs < SLOW_READ_MS / 2) {
      const reply = await fast.submit(cdbs.read10(fastCommands % 100, 8), { dataInBytes: 4096 });
      expect(reply.status).toBe(GOOD);
      fastCommands += 1;
    }
    expect((await stalled).status).toBe(GOOD);
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(SLOW_READ_MS - 5);
    // Tens of round trips while the other worker's thread was blocked in the store.
    expect(fastCommands).toBeGreaterThan(10);
  } finally {
    await slow.detach();
    await fast.detach();
  }
});

test("control requests race I/O: resize raises CAPACITY DATA HAS CHANGED, write-cache and detach drain", async () => {
  const device = await SimWorkerDevice.attach(pool, { sizeBytes: 4 * 1024 * 1024 });
  const inFlight = [];
  for (let n = 0; n < 64; n += 1) inFlight.push(device.submit(cdbs.write10(n * 8, 8), { dataOut: cdbs.patternBytes(4096, n) }));
  const resized = await device.call("resize", 2 * 1024 * 1024);
  expect(resized?.sizeBytes).toBe(2 * 1024 * 1024);
  await device.call("write-cache", true);
  const statuses = (await Promise.all(inFlight)).map((reply) => reply.status);
  // Each write ran before or after the resize: GOOD, or the unit attention it raised.
  expect(statuses.every((status) => status === GOOD || status === 2)).toBe(true);
  const capacity = await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 });
  const attention = capacity.status === 2 ? cdbs.senseTriple(capacity.sense) : undefined;
  const after = attention === undefined ? capacity : await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 });
  expect(new DataView(after.dataIn.buffer, after.dataIn.byteOffset).getUint32(0)).toBe(2 * 1024 * 1024 / 512 - 1);
  const tail = [];
  for (let n = 0; n < 32; n += 1) tail.push(device.submit(cdbs.read10(n * 8, 8), { dataInBytes: 4096 }));
  await device.detach();
  expect((await Promise.all(tail)).length).toBe(32);
});

test("a fault in one device's data path releases only that device; its worker keeps serving the other", async () => {
  const faulty = await SimWorkerDevice.attach(pool, { sizeBytes: 1024 * 1024 });
  const neighbour = await SimWorkerDevice.attach(pool, { sizeBytes: 1024 * 1024 });
  const worker = faulty.worker;
  // Put the neighbour on the same worker when the pool chose otherwise: attach until it does.
  const sameWorker = neighbour.worker === worker ? neighbour : await SimWorkerDevice.attach(pool, { sizeBytes: 1024 * 1024 });
  const extra = sameWorker === neighbour ? [] : [sameWorker];
  try {
    const releasedAt = new Promise<void>((resolve) => {
      const check = setInterval(() => faulty.released.length > 0 && (clearInterval(check), resolve()), 5);
    });
    await faulty.call("inject-fault");
    await releasedAt;
    expect(faulty.released[0]).toContain("fault injected");
    if (sameWorker.worker === worker) {
      const reply = await sameWorker.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
      expect(reply.status).toBe(GOOD);
    }
    expect(worker.alive).toBe(true);
  } finally {
    await faulty.detach();
    await neighbour.detach();
    for (const device of extra) await device.detach();
  }
});

test("a worker whose loop throws ends; each of its devices hears released, and a new device gets a new worker", async () => {
  const crashPool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, log);
  try {
    const deviceKey = `crash-test-${process.pid}`;
    const first = await SimWorkerDevice.attach(crashPool, { sizeBytes: 1024 * 1024, deviceKey });
    const second = await SimWorkerDevice.attach(crashPool, { sizeBytes: 1024 * 1024 });
    const worker = first.worker;
    expect(second.worker).toBe(worker);
    expect((await first.submit(cdbs.read10(0, 8), { dataInBytes: 4096 })).status).toBe(GOOD);
    await first.call("crash-worker");
    for (let waited = 0; (first.released.length === 0 || second.released.length === 0) && waited < 5000; waited += 5) await Bun.sleep(5);
    expect(first.released[0]).toBe("worker 0 failed: worker 0 crash injected (test hook)");
    expect(second.released[0]).toContain("crash injected");
    expect(worker.alive).toBe(false);
    expect(crashPool.workers).not.toContain(worker);
    // What serve does on "released": attach again — the same RAM store, whose lock the dead
    // thread gave back before it ended; the pool starts a fresh thread for it.
    await first.detach();
    const again = await SimWorkerDevice.attach(crashPool, { sizeBytes: 1024 * 1024, deviceKey });
    expect(again.worker).not.toBe(worker);
    expect((await again.submit(cdbs.read10(0, 8), { dataInBytes: 4096 })).status).toBe(GOOD);
    await again.detach();
    await second.detach();
  } finally {
    crashPool.stop();
  }
});

test("a worker's unit accepts any transfer its data area holds, above hw_max_sectors, and says so in VPD B0", async () => {
  // 256 blocks of 512 bytes: the libiscsi Read10.Simple size that the kernel's default
  // hw_max_sectors (128) would refuse if it were the limit; the kernel only bounds by the data area.
  const device = await SimWorkerDevice.attach(pool, { sizeBytes: 8 * 1024 * 1024, hwMaxSectors: 128, sim: { dataBlockCount: 64 } });
  try {
    const data = cdbs.patternBytes(256 * 512, 11);
    expect((await device.submit(cdbs.write10(0, 256), { dataOut: data })).status).toBe(GOOD);
    const read = await device.submit(cdbs.read10(0, 256), { dataInBytes: data.length });
    expect(read.status).toBe(GOOD);
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    const limits = await device.submit(cdbs.inquiry(64, true, 0xb0), { dataInBytes: 64 });
    const view = new DataView(limits.dataIn.buffer, limits.dataIn.byteOffset);
    expect(view.getUint32(8)).toBe((64 * 4096) / 512);
    expect(view.getUint32(12)).toBe(128);
  } finally {
    await device.detach();
  }
});
