// What an rbd device promises beyond reads and writes, checked against a real cluster (scripts/
// ceph/test-cluster.sh, started here): COMPARE AND WRITE atomic in the cluster, so two appliances
// on one image never both win; GET LBA STATUS, UNMAP and WRITE SAME agreeing with `rbd diff`;
// FUA data on the cluster before GOOD; a blocklisted client reconnecting by itself; and a host
// without librbd refusing rbd devices while serving the rest.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { liveClientCount } from "../../backstores/rbd/rbd-clients.ts";
import { openBackstore } from "../../backstores/open.ts";
import { BackstoreOpenError, type Backstore } from "../../backstores/types.ts";
import { EAGAIN } from "../../src/libc/errno.ts";
import { errorStatus } from "../../src/serve/errors.ts";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { INVALID_FIELD_IN_CDB, MISCOMPARE_DURING_VERIFY, NOT_READY_BECOMING_READY } from "../../src/scsi/sense.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import { startCephCluster, type CephCluster } from "../support/ceph-cluster.ts";
import { cdbs, expectCheck, expectGood, pattern, u32At, u64At, unmapList } from "../scsi/helpers.ts";
import { firstLineOf } from "./support.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 64 * 1024 * 1024;
const OBJECT_BLOCKS = (4 * 1024 * 1024) / BLOCK_BYTES;
const FIXTURES = `${import.meta.dir}/fixtures`;

let cluster: CephCluster;
const devices: SimDevice[] = [];

beforeAll(async () => {
  cluster = await startCephCluster();
  for (const image of ["caw", "race", "fua", "block", "share1", "share2", "share3"]) rbdCli("create", `rbd/${image}`, "--size", "64M");
  // Without fast-diff librbd lists each object's snapshots from librados' threads: the other path.
  for (const image of ["alloc-fd", "alloc-plain"]) {
    rbdCli("create", `rbd/${image}`, "--size", "64M", ...(image === "alloc-plain" ? ["--image-feature", "layering,exclusive-lock"] : []));
  }
}, 240_000);

afterAll(async () => {
  for (const device of devices.splice(0)) await device.close();
  await cluster?.stop();
}, 120_000);

function cli(tool: "rbd" | "ceph", ...args: string[]): string {
  const run = Bun.spawnSync([tool, "-c", cluster.confPath, ...args], { stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`${tool} ${args.join(" ")}: ${run.stderr.toString()}`);
  return run.stdout.toString();
}
const rbdCli = (...args: string[]) => cli("rbd", ...args);

async function exported(image: string): Promise<Uint8Array> {
  const path = `${cluster.dir}/${image}-${Date.now()}.raw`;
  rbdCli("export", `rbd/${image}`, path);
  return new Uint8Array(await Bun.file(path).arrayBuffer());
}

async function deviceOver(image: string): Promise<{ device: SimDevice; backstore: Backstore }> {
  const backstore = await openBackstore(`rbd/rbd/${image};conf=${cluster.confPath}`, { deviceKey: `test/${image}`, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
  const device = new SimDevice({ backstore, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, scsi: { writeCacheEnabled: true, maxTransferBlocks: 2048 }, sim: { dataBlockCount: 4096 } });
  devices.push(device);
  // The power-on unit attention.
  await device.submit(cdbs.testUnitReady());
  return { device, backstore };
}

function compareAndWriteData(compare: Uint8Array, write: Uint8Array): Uint8Array {
  const data = new Uint8Array(compare.length + write.length);
  data.set(compare, 0);
  data.set(write, compare.length);
  return data;
}

type Reader = { submit: SimDevice["submit"] };

/** GET LBA STATUS from LBA 0 to the end, as [lba, blocks] runs of mapped blocks. */
async function mappedRuns(device: Reader): Promise<[number, number][]> {
  const runs: [number, number][] = [];
  const totalBlocks = SIZE_BYTES / BLOCK_BYTES;
  for (let lba = 0; lba < totalBlocks; ) {
    const reply = await device.submit(cdbs.getLbaStatus(lba, 8 + 16 * 64), { dataInBytes: 8 + 16 * 64 });
    expectGood(reply);
    const count = (u32At(reply.dataIn, 0) - 4) / 16;
    expect(count).toBeGreaterThan(0);
    for (let index = 0; index < count; index += 1) {
      const start = Number(u64At(reply.dataIn, 8 + 16 * index));
      const blocks = u32At(reply.dataIn, 16 + 16 * index);
      const mapped = (reply.dataIn[20 + 16 * index]! & 0x0f) === 0;
      expect(start).toBe(lba);
      const last = runs.at(-1);
      if (mapped && last !== undefined && last[0] + last[1] === start) last[1] += blocks;
      else if (mapped) runs.push([start, blocks]);
      lba = start + blocks;
    }
  }
  return runs;
}

/** `rbd diff --whole-object`: the image's existing objects, as [lba, blocks] runs. */
function diffRuns(image: string): [number, number][] {
  const extents = JSON.parse(rbdCli("diff", "--whole-object", "--format", "json", `rbd/${image}`)) as { offset: number; length: number; exists: string }[];
  const runs: [number, number][] = [];
  for (const extent of extents.filter((entry) => entry.exists === "true").sort((a, b) => a.offset - b.offset)) {
    const [start, blocks] = [extent.offset / BLOCK_BYTES, extent.length / BLOCK_BYTES];
    const last = runs.at(-1);
    if (last !== undefined && last[0] + last[1] === start) last[1] += blocks;
    else runs.push([start, blocks]);
  }
  return runs;
}

describe("rbd on a live cluster: what other gateways and tools see", () => {
  test("COMPARE AND WRITE is done by the OSD: match writes, a miscompare names the first differing byte and leaves the block", async () => {
    const { device, backstore } = await deviceOver("caw");
    expect(backstore.capabilities.atomicCompareAndWriteBytes).toBe(512);
    // VPD B0 MAXIMUM COMPARE AND WRITE LENGTH: one 512-byte block, what librbd does atomically.
    const limits = await device.submit(cdbs.inquiry(64, true, 0xb0), { dataInBytes: 64 });
    expect(limits.dataIn[5]).toBe(1);
    // In the image's second object: librbd's own mismatch offset is wrong there.
    const lba = OBJECT_BLOCKS + 17;
    const old = pattern(BLOCK_BYTES, 1);
    expectGood(await device.submit(cdbs.write10(lba, 1), { dataOut: old }));
    const next = pattern(BLOCK_BYTES, 2);
    expectGood(await device.submit(cdbs.compareAndWrite(lba, 1), { dataOut: compareAndWriteData(old, next) }));
    expect(Buffer.from((await exported("caw")).subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES)).equals(Buffer.from(next))).toBe(true);

    const stale = next.slice();
    stale[300] = stale[300]! ^ 0xff;
    const third = pattern(BLOCK_BYTES, 3);
    const miss = await device.submit(cdbs.compareAndWrite(lba, 1, 0x08), { dataOut: compareAndWriteData(stale, third) });
    expectCheck(miss, MISCOMPARE_DURING_VERIFY, { information: 300 });
    const read = await device.submit(cdbs.read10(lba, 1), { dataInBytes: BLOCK_BYTES });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(next))).toBe(true);
    // Two blocks are more than the store can compare and write in one operation.
    const two = await device.submit(cdbs.compareAndWrite(lba, 2), { dataOut: new Uint8Array(4 * BLOCK_BYTES) });
    expectCheck(two, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 13 } });
  }, 60_000);

  test("two appliances racing COMPARE AND WRITE on one block never both win on the same old data", async () => {
    const { device } = await deviceOver("race");
    const lba = 3 * OBJECT_BLOCKS + 5;
    expectGood(await device.submit(cdbs.write10(lba, 1, 0x08), { dataOut: new Uint8Array(BLOCK_BYTES) }));
    const rounds = 60;
    const racer = (tag: number) =>
      Bun.spawn([process.execPath, `${FIXTURES}/rbd-compare-and-write-racer.ts`, `rbd/rbd/race;conf=${cluster.confPath}`, String(lba), String(tag), String(rounds)], {
        stdout: "pipe",
        stderr: "pipe",
      });
    const racers = [racer(1), racer(2)];
    const results = await Promise.all(
      racers.map(async (child) => {
        const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
        if (code !== 0) throw new Error(`racer exited ${code}: ${stderr}`);
        return JSON.parse(stdout.trim().split("\n").at(-1)!) as { won: number[]; miscompares: number };
      }),
    );
    const [first, second] = results as [{ won: number[]; miscompares: number }, { won: number[]; miscompares: number }];
    // Every increment won by exactly one of them: no value twice, none lost.
    expect(first.won.filter((value) => second.won.includes(value))).toEqual([]);
    expect([...first.won, ...second.won].sort((a, b) => a - b)).toEqual(Array.from({ length: rounds }, (_, index) => index));
    const block = (await exported("race")).subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES);
    expect(new DataView(block.buffer, block.byteOffset).getUint32(0)).toBe(rounds);
    console.log(`C&W race: ${first.won.length} / ${second.won.length} wins, ${first.miscompares + second.miscompares} miscompares`);
  }, 120_000);

  for (const [image, where] of [
    ["alloc-fd", "fast-diff, on a data-plane worker"],
    ["alloc-plain", "no object map, through the simulator"],
  ] as const) {
    test(`GET LBA STATUS, UNMAP and WRITE SAME agree with rbd diff --whole-object (${where})`, async () => {
      let reader: Reader;
      let detach = async () => {};
      if (image === "alloc-fd") {
        const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, { info: () => {}, warn: () => {}, error: () => {} });
        const worker = await SimWorkerDevice.attach(pool, { configPath: `rbd/rbd/${image};conf=${cluster.confPath}`, sizeBytes: SIZE_BYTES, sim: { dataBlockCount: 4096 } });
        await worker.submit(cdbs.testUnitReady());
        reader = worker;
        detach = async () => {
          await worker.detach();
          pool.stop();
        };
      } else {
        reader = (await deviceOver(image)).device;
      }
      try {
        expect(await mappedRuns(reader)).toEqual([]);
        for (const object of [0, 2, 3, 4, 10, 15]) expectGood(await reader.submit(cdbs.write10(object * OBJECT_BLOCKS + 100, 8), { dataOut: pattern(4096, object) }));
        // UNMAP of a whole object removes it; WRITE SAME of zeros with UNMAP over objects 10-11 too.
        const list = unmapList([[3 * OBJECT_BLOCKS, OBJECT_BLOCKS]]);
        expectGood(await reader.submit(cdbs.unmap(list.length), { dataOut: list }));
        expectGood(await reader.submit(cdbs.writeSame16(10 * OBJECT_BLOCKS, 2 * OBJECT_BLOCKS, 0x08), { dataOut: new Uint8Array(BLOCK_BYTES) }));
        const runs = await mappedRuns(reader);
        expect(runs).toEqual(diffRuns(image));
        expect(runs).toEqual([
          [0, OBJECT_BLOCKS],
          [2 * OBJECT_BLOCKS, OBJECT_BLOCKS],
          [4 * OBJECT_BLOCKS, OBJECT_BLOCKS],
          [15 * OBJECT_BLOCKS, OBJECT_BLOCKS],
        ]);
      } finally {
        await detach();
      }
    }, 90_000);
  }

  test("FUA data is on the cluster before GOOD: it survives the appliance being killed", async () => {
    const lba = 5 * OBJECT_BLOCKS + 40;
    const child = Bun.spawn([process.execPath, `${FIXTURES}/rbd-writer-killed.ts`, `rbd/rbd/fua;conf=${cluster.confPath}`, String(lba), "77"], { stdout: "pipe", stderr: "pipe" });
    const said = await firstLineOf(child.stdout);
    child.kill("SIGKILL");
    await child.exited;
    expect(said.trim()).toBe("written");
    const image = await exported("fua");
    expect(Buffer.from(image.subarray(lba * BLOCK_BYTES, (lba + 128) * BLOCK_BYTES)).equals(Buffer.from(pattern(128 * BLOCK_BYTES, 77)))).toBe(true);
  }, 60_000);

  test("a client the cluster blocklists answers NOT READY, reconnects by itself and serves again: logged once each way, counted", async () => {
    const logs: string[] = [];
    const log = (message: string) => logs.push(message);
    const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, { info: log, warn: log, error: log });
    const device = await SimWorkerDevice.attach(pool, { configPath: `rbd/rbd/block;conf=${cluster.confPath}`, sizeBytes: SIZE_BYTES, sim: { dataBlockCount: 4096 } });
    const watchers = () => (JSON.parse(rbdCli("status", "--format", "json", "rbd/block")) as { watchers: { address: string }[] }).watchers.map((watcher) => watcher.address);
    let address: string | undefined;
    try {
      await device.submit(cdbs.testUnitReady());
      expectGood(await device.submit(cdbs.write10(0, 8), { dataOut: pattern(4096, 1) }));
      [address] = watchers();
      expect(address).toBeDefined();
      cli("ceph", "osd", "blocklist", "add", address!);
      let notReady = 0;
      const data = pattern(4096, 2);
      const deadline = Date.now() + 60_000;
      let status = -1;
      while (status !== 0 && Date.now() < deadline) {
        const reply = await device.submit(cdbs.write10(0, 8), { dataOut: data });
        status = reply.status;
        if (status !== 0) {
          expectCheck(reply, NOT_READY_BECOMING_READY);
          notReady += 1;
          await Bun.sleep(100);
        }
      }
      expect(status).toBe(0);
      expect(notReady).toBeGreaterThan(0);
      const store = logs.filter((line) => line.includes("rbd rbd/block"));
      expect(store.length).toBe(2);
      expect(store[0]).toContain("blocklisted this client");
      expect(store[1]).toContain("serves again: reconnected");
      expect(device.metrics.storeOutages).toBe(1);
      // A new client: another address watches the image now.
      expect(watchers()).not.toContain(address);
      const read = await device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
      expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    } finally {
      if (address !== undefined) cli("ceph", "osd", "blocklist", "rm", address);
      await device.detach();
      pool.stop();
    }
  }, 90_000);

  test("the rbd devices of one thread share one rados client (not ~17 threads and a session each, as tcmu-runner's do)", async () => {
    const threads = () => readdirSync("/proc/self/task").length;
    const clientsBefore = liveClientCount();
    const config = (image: string) => `rbd/rbd/${image};osd_op_timeout=7;conf=${cluster.confPath}`;
    const open = (image: string) => openBackstore(config(image), { deviceKey: `test/${image}`, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
    const first = await open("share1");
    const threadsWithOne = threads();
    const more = [await open("share2"), await open("share3")];
    const watcher = (image: string) => (JSON.parse(rbdCli("status", "--format", "json", `rbd/${image}`)) as { watchers: { address: string }[] }).watchers.map((entry) => entry.address);
    const addresses = ["share1", "share2", "share3"].map(watcher);
    expect(addresses[0]!.length).toBe(1);
    expect(addresses[1]).toEqual(addresses[0]!);
    expect(addresses[2]).toEqual(addresses[0]!);
    expect(liveClientCount()).toBe(clientsBefore + 1);
    const perExtraImage = (threads() - threadsWithOne) / 2;
    console.log(`threads: ${threadsWithOne} with one rbd image, +${perExtraImage} per further image`);
    expect(perExtraImage).toBeLessThan(5);
    for (const store of [first, ...more]) await store.close();
    // The last image out shut the client down.
    expect(liveClientCount()).toBe(clientsBefore);
  }, 60_000);

  // Last: it stops the whole cluster for client_mount_timeout (15 s).
  test("a cluster that does not answer at open is refused as transient (serve tries again), and the opening thread is not blocked meanwhile", async () => {
    // A monitor that accepts connections and never says a word, in a conf of its own: the shared
    // cluster keeps serving the other tests (stopping its daemons left their clients' watches and
    // sessions to time out well after this test). Recovery once the OSDs answer again is
    // rbd.test.ts's OSD-stopped test.
    const silent = () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const monitors = [silent(), silent()];
    const silentConf = `${cluster.dir}/silent-monitor.conf`;
    const conf = await Bun.file(cluster.confPath).text();
    expect(conf).toMatch(/^mon host = .*$/m);
    await Bun.write(silentConf, conf.replace(/^mon host = .*$/m, `mon host = [v2:127.0.0.1:${monitors[0]!.port},v1:127.0.0.1:${monitors[1]!.port}]`));
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 100);
    const startedAt = performance.now();
    let refusal: unknown;
    try {
      await openBackstore(`rbd/rbd/caw;osd_op_timeout=5;conf=${silentConf}`, { deviceKey: "test/down", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
    } catch (error) {
      refusal = error;
    } finally {
      clearInterval(ticker);
      for (const monitor of monitors) monitor.stop(true);
    }
    const elapsedMs = performance.now() - startedAt;
    console.log(`open with a silent monitor: refused after ${Math.round(elapsedMs)} ms, ${ticks} ticks of 100 ms meanwhile: ${String(refusal)}`);
    expect(refusal).toBeInstanceOf(BackstoreOpenError);
    expect((refusal as BackstoreOpenError).transient).toBe(true);
    expect((refusal as Error).message).toContain("cannot connect to the cluster");
    expect(errorStatus(refusal)).toBe(-EAGAIN);
    // Bounded by client_mount_timeout, and this thread's event loop ran all along (the connect
    // blocked a thread of its own).
    expect(elapsedMs).toBeLessThan(30_000);
    expect(ticks).toBeGreaterThan((elapsedMs / 100) * 0.5);
    // The same open against monitors that answer works: the refusal was the cluster's, not the image's.
    const store = await openBackstore(`rbd/rbd/caw;osd_op_timeout=5;conf=${cluster.confPath}`, { deviceKey: "test/up", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
    await store.close();
  }, 90_000);

  test("where librbd cannot be loaded, an rbd device is refused naming the package, and a RAM device in the same process serves", async () => {
    const library = Bun.spawnSync(["sh", "-c", "readlink -f $(ldconfig -p | awk '/librbd.so.1 /{print $NF; exit}')"], { stdout: "pipe" }).stdout.toString().trim();
    expect(library).toContain("librbd.so");
    // A mount namespace of its own hides librbd from the child alone.
    const run = Bun.spawnSync(["unshare", "-m", "sh", "-c", `mount --bind /dev/null ${library} && exec "$0" "$1"`, process.execPath, `${FIXTURES}/rbd-without-librbd.ts`], { stdout: "pipe", stderr: "pipe" });
    if (run.exitCode !== 0) throw new Error(`the child without librbd failed (${run.exitCode}): ${run.stderr.toString()}`);
    const result = JSON.parse(run.stdout.toString().trim()) as { refusal: string; ramServes: boolean };
    expect(result.refusal).toStartWith("BackstoreOpenError: librbd is not available");
    expect(result.refusal).toContain("install librbd1");
    expect(result.ramServes).toBe(true);
  }, 60_000);
});
