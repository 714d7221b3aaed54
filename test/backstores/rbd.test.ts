// The rbd store against a real Ceph cluster that the test starts itself (scripts/ceph/
// test-cluster.sh: one monitor and one memstore OSD on 127.0.0.1, stopped at the end or by its
// own watchdog). Commands go through the simulator's ring into librbd's asynchronous calls,
// straight on the data area's iovecs, completing in any order through the image's eventfd.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openBackstore } from "../../backstores/open.ts";
import { BackstoreOpenError, type Backstore } from "../../backstores/types.ts";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import { DEFAULT_IDENTITY } from "../../src/scsi/device.ts";
import * as cdbs from "../support/cdbs.ts";
import { extendedCopyList } from "../scsi/helpers.ts";
import { rbdCli, startCephCluster } from "../support/ceph-cluster.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 64 * 1024 * 1024;
const CLUSTER_START_MS = 240_000;

let cluster: Awaited<ReturnType<typeof startCephCluster>>;
const devices: SimDevice[] = [];

beforeAll(async () => {
  cluster = await startCephCluster();
  for (const image of ["t1", "t2", "t3", "t4", "t5", "c1", "c2"]) rbd("create", `rbd/${image}`, "--size", "64M");
}, CLUSTER_START_MS);

afterAll(async () => {
  for (const device of devices.splice(0)) await device.close();
  await cluster?.stop();
}, 120_000);

const rbd = (...args: string[]) => rbdCli(cluster.confPath, ...args);

function open(config: string, sizeBytes = SIZE_BYTES): Promise<Backstore> {
  return openBackstore(`${config};conf=${cluster.confPath}`, { deviceKey: "test/rbd", sizeBytes, blockSizeBytes: BLOCK_BYTES });
}

async function deviceOver(image: string): Promise<SimDevice> {
  const backstore = await open(`rbd/rbd/${image}`);
  const device = new SimDevice({ backstore, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, scsi: { writeCacheEnabled: true, maxTransferBlocks: 2048 }, sim: { dataBlockCount: 4096 } });
  devices.push(device);
  return device;
}

describe("rbd backstore on a live cluster", () => {
  test("writes read back, through librbd's vectored calls, and reach the image (rbd export sees them)", async () => {
    const device = await deviceOver("t1");
    const data = cdbs.patternBytes(256 * 1024, 3);
    expect((await device.submit(cdbs.write10(2048, 512), { dataOut: data })).status).toBe(0);
    const read = await device.submit(cdbs.read10(2048, 512), { dataInBytes: data.length });
    expect(read.status).toBe(0);
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    // FUA: durable on the cluster before GOOD; SYNCHRONIZE CACHE flushes.
    expect((await device.submit(cdbs.write10(0, 8, 0x08), { dataOut: cdbs.patternBytes(4096, 9) })).status).toBe(0);
    expect((await device.submit(Uint8Array.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).status).toBe(0);
    const exported = `${cluster.dir}/t1.raw`;
    rbd("export", "rbd/t1", exported);
    const bytes = new Uint8Array(await Bun.file(exported).arrayBuffer());
    expect(Buffer.from(bytes.subarray(2048 * 512, 2048 * 512 + data.length)).equals(Buffer.from(data))).toBe(true);
  }, 60_000);

  test("random writes, many in flight, leave the image byte for byte what rbd export reads", async () => {
    const device = await deviceOver("t5");
    const shadow = new Uint8Array(SIZE_BYTES);
    let seed = 12345;
    const random = (below: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % below;
    };
    const totalBlocks = SIZE_BYTES / BLOCK_BYTES;
    for (let batch = 0; batch < 16; batch += 1) {
      // Writes in flight together never overlap: their order is the initiator's business.
      const ranges: [number, number][] = [];
      while (ranges.length < 16) {
        const blocks = 1 + random(128);
        const lba = random(totalBlocks - blocks);
        if (ranges.every(([start, count]) => lba + blocks <= start || start + count <= lba)) ranges.push([lba, blocks]);
      }
      const writes = ranges.map(([lba, blocks]) => {
        const data = cdbs.patternBytes(blocks * BLOCK_BYTES, batch * 100 + lba);
        shadow.set(data, lba * BLOCK_BYTES);
        return device.submit(cdbs.write10(lba, blocks), { dataOut: data });
      });
      expect((await Promise.all(writes)).every((completion) => completion.status === 0)).toBe(true);
    }
    expect((await device.submit(Uint8Array.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).status).toBe(0);
    const exported = `${cluster.dir}/t5.raw`;
    rbd("export", "rbd/t5", exported);
    const image = new Uint8Array(await Bun.file(exported).arrayBuffer());
    expect(image.length).toBe(SIZE_BYTES);
    expect(Buffer.from(image).equals(Buffer.from(shadow))).toBe(true);
    const read = await device.submit(cdbs.read10(1000, 2048), { dataInBytes: 2048 * BLOCK_BYTES });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(shadow.subarray(1000 * BLOCK_BYTES, 3048 * BLOCK_BYTES)))).toBe(true);
  }, 120_000);

  test("VPD B0 gives the object size as optimal transfer and unmap granularity", async () => {
    const device = await deviceOver("t2");
    const reply = await device.submit(cdbs.inquiry(64, true, 0xb0), { dataInBytes: 64 });
    const view = new DataView(reply.dataIn.buffer, reply.dataIn.byteOffset);
    const objectBlocks = (4 * 1024 * 1024) / BLOCK_BYTES;
    expect(view.getUint16(6)).toBe(objectBlocks);
    expect(view.getUint32(28)).toBe(objectBlocks);
  }, 60_000);

  test("EXTENDED COPY from one rbd device to another copies the blocks through the cluster", async () => {
    const unit = async (image: string) => {
      const backstore = await open(`rbd/rbd/${image}`);
      const device = new SimDevice({
        backstore,
        sizeBytes: SIZE_BYTES,
        blockSizeBytes: BLOCK_BYTES,
        scsi: { name: image, writeCacheEnabled: true, maxTransferBlocks: 2048, identity: { ...DEFAULT_IDENTITY, unitSerial: `rbd-${image}` } },
      });
      devices.push(device);
      return device;
    };
    const [source, destination] = [await unit("c1"), await unit("c2")];
    const data = cdbs.patternBytes(2048 * BLOCK_BYTES, 42);
    expect((await source.submit(cdbs.write10(100, 2048), { dataOut: data })).status).toBe(0);
    const naa = (device: SimDevice) => Uint8Array.from(Buffer.from(device.scsi.naaKey, "hex"));
    const list = extendedCopyList([naa(source), naa(destination)], [{ source: 0, destination: 1, blocks: 2048, sourceLba: 100, destinationLba: 5000 }], BLOCK_BYTES);
    const copy = await source.submit(Uint8Array.from([0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, (list.length >> 24) & 0xff, (list.length >> 16) & 0xff, (list.length >> 8) & 0xff, list.length & 0xff, 0, 0]), { dataOut: list });
    expect(copy.status).toBe(0);
    const read = await destination.submit(cdbs.read10(5000, 2048), { dataInBytes: data.length });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
  }, 60_000);

  test("many commands in flight complete out of order, none lost", async () => {
    const device = await deviceOver("t2");
    const writes = Array.from({ length: 64 }, (_, index) => {
      const data = cdbs.patternBytes(8 * BLOCK_BYTES, 100 + index);
      return device.submit(cdbs.write10(index * 64, 8), { dataOut: data }).then((completion) => ({ completion, data, index }));
    });
    const written = await Promise.all(writes);
    expect(written.every(({ completion }) => completion.status === 0)).toBe(true);
    const reads = await Promise.all(written.map(({ index }) => device.submit(cdbs.read10(index * 64, 8), { dataInBytes: 8 * BLOCK_BYTES })));
    expect(reads.every((read, index) => read.status === 0 && Buffer.from(read.dataIn).equals(Buffer.from(written[index]!.data)))).toBe(true);
  }, 60_000);

  test("UNMAP discards: the range reads back as zeros", async () => {
    const device = await deviceOver("t1");
    expect((await device.submit(cdbs.write10(4096, 16), { dataOut: cdbs.patternBytes(16 * BLOCK_BYTES, 5) })).status).toBe(0);
    const list = new Uint8Array(24);
    const view = new DataView(list.buffer);
    view.setUint16(0, 22);
    view.setUint16(2, 16);
    view.setBigUint64(8, 4096n);
    view.setUint32(16, 16);
    expect((await device.submit(Uint8Array.from([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), { dataOut: list })).status).toBe(0);
    const read = await device.submit(cdbs.read10(4096, 16), { dataInBytes: 16 * BLOCK_BYTES });
    expect(read.dataIn.every((byte) => byte === 0)).toBe(true);
  }, 60_000);

  test("a snapshot is served read-only: its data, and writes refused with DATA PROTECT", async () => {
    rbd("snap", "create", "rbd/t1@s1");
    const backstore = await open("rbd/rbd/t1@s1");
    expect(backstore.capabilities.readOnly).toBe(true);
    const device = new SimDevice({ backstore, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, scsi: { maxTransferBlocks: 2048 } });
    devices.push(device);
    const write = await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(BLOCK_BYTES) });
    expect(write.status).toBe(2);
    expect(cdbs.senseTriple(write.sense)[0]).toBe(0x07);
  }, 60_000);

  test("on a data-plane worker, completions come through the worker's own epoll", async () => {
    const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, { info: () => {}, warn: () => {}, error: () => {} });
    try {
      const device = await SimWorkerDevice.attach(pool, { configPath: `rbd/rbd/t3;conf=${cluster.confPath}`, sizeBytes: SIZE_BYTES, sim: { dataBlockCount: 2048 } });
      try {
        const pending = Array.from({ length: 32 }, async (_, index) => {
          const data = cdbs.patternBytes(16 * BLOCK_BYTES, 500 + index);
          const written = await device.submit(cdbs.write10(index * 1024, 16), { dataOut: data });
          const read = await device.submit(cdbs.read10(index * 1024, 16), { dataInBytes: data.length });
          return written.status === 0 && read.status === 0 && Buffer.from(read.dataIn).equals(Buffer.from(data));
        });
        expect((await Promise.all(pending)).every(Boolean)).toBe(true);
      } finally {
        await device.detach();
      }
    } finally {
      pool.stop();
    }
  }, 60_000);

  test("inspect rbd/<pool>/<image> shows size, object size, features and snapshots; a missing image is refused", async () => {
    rbd("snap", "create", "rbd/t2@i1");
    const main = `${import.meta.dir}/../../src/main.ts`;
    const run = Bun.spawnSync(["bun", main, "inspect", `rbd/rbd/t2;conf=${cluster.confPath}`, "--json"], { stdout: "pipe", stderr: "pipe" });
    expect(run.exitCode).toBe(0);
    const info = JSON.parse(run.stdout.toString());
    expect(info).toMatchObject({ image: "rbd/t2", sizeBytes: SIZE_BYTES, objectSizeBytes: 4 * 1024 * 1024 });
    expect(info.features).toContain("layering");
    expect(info.snapshots.map((snapshot: { name: string }) => snapshot.name)).toEqual(["i1"]);
    const missing = Bun.spawnSync(["bun", main, "inspect", `rbd/rbd/nothere;conf=${cluster.confPath}`], { stdout: "pipe", stderr: "pipe" });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr.toString()).toContain('image "nothere" in pool "rbd": ENOENT');
  }, 60_000);

  test("rbd resize on the cluster is noticed: CAPACITY DATA HAS CHANGED, then READ CAPACITY gives the new size", async () => {
    const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, { info: () => {}, warn: () => {}, error: () => {} });
    try {
      const device = await SimWorkerDevice.attach(pool, { configPath: `rbd/rbd/t4;conf=${cluster.confPath}`, sizeBytes: SIZE_BYTES, sim: { dataBlockCount: 256 } });
      try {
        const lastLba = async () => {
          const reply = await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 });
          return reply.status === 0 ? Number(new DataView(reply.dataIn.buffer, reply.dataIn.byteOffset).getBigUint64(0)) : -1;
        };
        while ((await lastLba()) === -1); // the power-on unit attention
        expect(await lastLba()).toBe(SIZE_BYTES / BLOCK_BYTES - 1);
        rbd("resize", "rbd/t4", "--size", "128M");
        let attention: number[] = [];
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const reply = await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 });
          if (reply.status === 2) {
            attention = cdbs.senseTriple(reply.sense);
            break;
          }
          await Bun.sleep(200);
        }
        expect(attention).toEqual([0x06, 0x2a, 0x09]);
        expect(await lastLba()).toBe((2 * SIZE_BYTES) / BLOCK_BYTES - 1);
      } finally {
        await device.detach();
      }
    } finally {
      pool.stop();
    }
  }, 60_000);

  test("an image that is not there, a pool that is not there and a dev_size above the image are refused, naming them", async () => {
    await expect(open("rbd/rbd/missing")).rejects.toThrow('image "missing" in pool "rbd": ENOENT');
    await expect(open("rbd/nopool/t1")).rejects.toThrow('pool "nopool": ENOENT');
    await expect(open("rbd/rbd/t2", 2 * SIZE_BYTES)).rejects.toThrow(BackstoreOpenError);
    await expect(open("rbd/rbd/t2", 2 * SIZE_BYTES)).rejects.toThrow("smaller than dev_size");
  }, 60_000);
  test("an OSD that stops answering fails commands with NOT READY (retryable) after osd_op_timeout, not a hang; they work again after", async () => {
    const backstore = await open("rbd/rbd/t3;osd_op_timeout=2");
    const device = new SimDevice({ backstore, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, scsi: { writeCacheEnabled: true, maxTransferBlocks: 2048 } });
    devices.push(device);
    const health: boolean[] = [];
    backstore.onHealth = (available) => health.push(available);
    const osdPid = Number((await Bun.file(`${cluster.dir}/run/osd.0.pid`).text()).trim());
    process.kill(osdPid, "SIGSTOP");
    let completion;
    const stalledAt = performance.now();
    try {
      completion = await device.submit(cdbs.write10(64, 8), { dataOut: cdbs.patternBytes(4096, 77) });
    } finally {
      process.kill(osdPid, "SIGCONT");
    }
    // Answered within the bound (osd_op_timeout=2), well inside the kernel's 30 s cmd_time_out.
    expect(performance.now() - stalledAt).toBeLessThan(10_000);
    expect(completion.status).toBe(2);
    expect(cdbs.senseTriple(completion.sense)).toEqual([0x02, 0x04, 0x01]);
    // As an initiator does with NOT READY: retry until the cluster answers again.
    const data = cdbs.patternBytes(4096, 78);
    const deadline = Date.now() + 60_000;
    let retry = await device.submit(cdbs.write10(64, 8), { dataOut: data });
    while (retry.status !== 0 && Date.now() < deadline) retry = await device.submit(cdbs.write10(64, 8), { dataOut: data });
    if (retry.status !== 0) throw new Error(`still failing after the OSD came back: sense ${cdbs.senseTriple(retry.sense).map((byte) => byte.toString(16))}`);
    const read = await device.submit(cdbs.read10(64, 8), { dataInBytes: 4096 });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    // Reported once when it started and once when it ended, however many commands failed.
    expect(health).toEqual([false, true]);
  }, 120_000);

});
