// The rbd store's MediumOwnership against a live cluster (scripts/ceph/test-cluster.sh): the
// image's exclusive lock decides which gateway is active/optimized (docs/ha.md). Two gateways are
// two rados clients: the images of one thread share a client per (conf, id, OSD timeout), so the
// second store asks for another OSD timeout and gets a client of its own; the dead-owner test
// runs its owner in a child process and kills it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openBackstore } from "../../backstores/open.ts";
import { BackstoreError, type Backstore, type MediumOwnership } from "../../backstores/types.ts";
import { rbdCli, startCephCluster, type CephCluster } from "../support/ceph-cluster.ts";
import { firstLineOf, MappedBuffer } from "./support.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 64 * 1024 * 1024;
const MiB = 1024 * 1024;
/** Tags (ALUA group ids) of the two gateways. */
const TAG_A = 1;
const TAG_B = 2;
/** Bound on waiting for a killed owner's lock: the test cluster's watch timeout is 10 s. */
const DEAD_OWNER_WAIT_MS = 45_000;

let cluster: CephCluster;
const stores: Backstore[] = [];
const buffers: MappedBuffer[] = [];

beforeAll(async () => {
  cluster = await startCephCluster();
  for (const image of ["free", "busy", "fence", "flight", "handover", "dead", "snapped", "idle"]) rbd("create", `rbd/${image}`, "--size", "64M");
  rbd("snap", "create", "rbd/snapped@gold");
}, 240_000);

afterAll(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const buffer of buffers.splice(0)) buffer.release();
  await cluster?.stop();
}, 120_000);

const rbd = (...args: string[]) => rbdCli(cluster.confPath, ...args);

/** Gateway "a" uses the thread's default client, "b" a client of its own (another OSD timeout). */
function configOf(image: string, gateway: "a" | "b"): string {
  return `rbd/rbd/${image}${gateway === "b" ? ";osd_op_timeout=19" : ""};conf=${cluster.confPath}`;
}

async function open(image: string, gateway: "a" | "b"): Promise<{ store: Backstore; ownership: MediumOwnership }> {
  const store = await openBackstore(configOf(image, gateway), { deviceKey: `test/${image}-${gateway}`, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
  stores.push(store);
  expect(store.ownership).toBeDefined();
  return { store, ownership: store.ownership! };
}

function filled(lengthBytes: number, seed: number): MappedBuffer {
  const buffer = new MappedBuffer(lengthBytes);
  buffers.push(buffer);
  for (let index = 0; index < lengthBytes; index += 4) new DataView(buffer.bytes.buffer, buffer.bytes.byteOffset).setUint32(index, (seed * 0x9e3779b1 + index) >>> 0, true);
  return buffer;
}

function write(store: Backstore, offsetBytes: number, buffer: MappedBuffer): Promise<void> {
  return Promise.resolve(store.write(offsetBytes, buffer.bytes.length, buffer.segments(buffer.bytes.length), 0, false));
}

async function readBack(store: Backstore, offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
  const buffer = new MappedBuffer(lengthBytes);
  buffers.push(buffer);
  await store.read(offsetBytes, lengthBytes, buffer.segments(lengthBytes), 0);
  return buffer.bytes.slice();
}

async function rejection(work: Promise<unknown>): Promise<BackstoreError> {
  try {
    await work;
  } catch (error) {
    expect(error).toBeInstanceOf(BackstoreError);
    return error as BackstoreError;
  }
  throw new Error("it succeeded");
}

/** Retries `attempt` (which rejects "unavailable" meanwhile) until it succeeds or `waitMs` passes. */
async function retried<T>(attempt: () => Promise<T>, waitMs: number): Promise<{ value: T; tries: number }> {
  const deadline = performance.now() + waitMs;
  for (let tries = 1; ; tries += 1) {
    try {
      return { value: await attempt(), tries };
    } catch (error) {
      if (!(error instanceof BackstoreError) || error.kind !== "unavailable" || performance.now() > deadline) throw error;
      await Bun.sleep(100);
    }
  }
}

const same = (left: Uint8Array, right: Uint8Array) => Buffer.from(left).equals(Buffer.from(right));

describe("rbd MediumOwnership: the image's exclusive lock says which gateway is active/optimized", () => {
  test("a read-only snapshot has no ownership", async () => {
    const store = await openBackstore(`rbd/rbd/snapped@gold;conf=${cluster.confPath}`, { deviceKey: "test/snapped", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
    stores.push(store);
    expect(store.ownership).toBeUndefined();
  }, 30_000);

  test("implicit acquire of a free lock succeeds, and the other gateway reads our tag; open and reads take no lock", async () => {
    const a = await open("free", "a");
    const b = await open("free", "b");
    await readBack(a.store, 0, 4096);
    expect(a.ownership.owned).toBe(false);
    expect(await b.ownership.ownerTag()).toBeUndefined();
    const startedAt = performance.now();
    await a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A });
    const acquireMs = performance.now() - startedAt;
    expect(a.ownership.owned).toBe(true);
    await Bun.sleep(1100); // past b's cached "nobody" (OWNER_TAG_CACHE_MS)
    const askedAt = performance.now();
    expect(await b.ownership.ownerTag()).toBe(TAG_A);
    const ownerTagMs = performance.now() - askedAt;
    // Cached: RTPG on every path every few seconds asks the cluster at most once a second.
    const cachedAt = performance.now();
    expect(await b.ownership.ownerTag()).toBe(TAG_A);
    const cachedMs = performance.now() - cachedAt;
    expect(await a.ownership.ownerTag()).toBe(TAG_A);
    console.log(`implicit acquire of a free lock: ${acquireMs.toFixed(1)} ms; ownerTag() from the other gateway: ${ownerTagMs.toFixed(1)} ms, cached ${cachedMs.toFixed(2)} ms`);
  }, 60_000);

  test("implicit acquire while another live gateway owns the lock is refused 'unavailable', naming the owner, and the owner keeps it", async () => {
    const a = await open("busy", "a");
    const b = await open("busy", "b");
    await a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A });
    const startedAt = performance.now();
    const refusal = await rejection(b.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_B }));
    const refusedMs = performance.now() - startedAt;
    expect(refusal.kind).toBe("unavailable");
    expect(refusal.message).toContain("owned by 127.0.0.1");
    expect(b.ownership.owned).toBe(false);
    expect(a.ownership.owned).toBe(true);
    // The owner still writes; the other gateway's write is refused NOT READY (EROFS), not GOOD.
    await write(a.store, 0, filled(4096, 1));
    const refusedWrite = await rejection(write(b.store, 0, filled(4096, 2)));
    expect(refusedWrite.kind).toBe("unavailable");
    expect(await b.ownership.ownerTag()).toBe(TAG_A);
    expect(same(await readBack(b.store, 0, 4096), filled(4096, 1).bytes)).toBe(true);
    console.log(`implicit acquire against a live owner refused in ${refusedMs.toFixed(1)} ms: ${refusal.message}`);
  }, 60_000);

  test("explicit acquire breaks a live owner: it is blocklisted first (its later writes are refused), onLost fires once, the image holds the new owner's data", async () => {
    const a = await open("fence", "a");
    const b = await open("fence", "b");
    const lost: string[] = [];
    a.ownership.onLost = (reason) => lost.push(reason);
    let aServes: (() => void) | undefined;
    const aReconnected = new Promise<void>((resolve) => (aServes = resolve));
    a.store.onHealth = (available) => {
      if (available) aServes?.();
    };
    await a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A });
    const offset = 8 * MiB;
    await write(a.store, offset, filled(64 * 1024, 10));

    const startedAt = performance.now();
    await b.ownership.acquire({ breakLiveOwner: true, ownerTag: TAG_B });
    const breakMs = performance.now() - startedAt;
    expect(b.ownership.owned).toBe(true);
    await write(b.store, offset, filled(64 * 1024, 20));

    // The old owner does not know yet; its write goes to the OSD and is refused (ESHUTDOWN).
    const late = await rejection(write(a.store, offset, filled(64 * 1024, 11)));
    expect(late.kind).toBe("unavailable");
    expect(late.message).toContain("ESHUTDOWN");
    expect(lost.length).toBe(1);
    expect(lost[0]).toContain("blocklisted");
    expect(a.ownership.owned).toBe(false);
    // Reconnected as a new client, it does not get the lock back by writing (EROFS: NOT READY),
    // nor implicitly; onLost is not called again.
    await aReconnected;
    expect((await rejection(write(a.store, offset, filled(64 * 1024, 12)))).kind).toBe("unavailable");
    expect((await rejection(a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A }))).message).toContain("owned by");
    await Bun.sleep(2500); // a period of the store's timer: the check finds nothing more to report
    expect(lost.length).toBe(1);
    expect(await a.ownership.ownerTag()).toBe(TAG_B);
    expect(same(await readBack(a.store, offset, 64 * 1024), filled(64 * 1024, 20).bytes)).toBe(true);
    const path = `${cluster.dir}/fence.raw`;
    rbd("export", "rbd/fence", path);
    const exported = new Uint8Array(await Bun.file(path).arrayBuffer());
    expect(same(exported.subarray(offset, offset + 64 * 1024), filled(64 * 1024, 20).bytes)).toBe(true);
    console.log(`explicit acquire breaking a live owner (blocklist + break + acquire + publish): ${breakMs.toFixed(1)} ms`);
  }, 90_000);

  test("writes in flight on the old owner when its lock is broken never complete GOOD after the new owner's: the image ends with the new owner's data", async () => {
    const a = await open("flight", "a");
    const b = await open("flight", "b");
    await a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A });
    const chunkBytes = MiB;
    const chunks = 8;
    const aData = Array.from({ length: chunks }, (_, index) => filled(chunkBytes, 100 + index));
    const results: { chunk: number; submittedMs: number; completedMs: number; ok: boolean; error?: string }[] = [];
    let stop = false;
    // Gateway A keeps eight 1 MiB writes in flight over [0, 8 MiB) until they fail.
    const writer = async (chunk: number) => {
      while (!stop) {
        const submittedMs = performance.now();
        try {
          await write(a.store, chunk * chunkBytes, aData[chunk]!);
          results.push({ chunk, submittedMs, completedMs: performance.now(), ok: true });
        } catch (error) {
          results.push({ chunk, submittedMs, completedMs: performance.now(), ok: false, error: String(error) });
          stop = true;
        }
      }
    };
    const writers = Array.from({ length: chunks }, (_, chunk) => writer(chunk));
    await Bun.sleep(300);
    const breakStartMs = performance.now();
    await b.ownership.acquire({ breakLiveOwner: true, ownerTag: TAG_B });
    const acquiredMs = performance.now();
    const bData = filled(chunks * chunkBytes, 200);
    await write(b.store, 0, bData);
    const bWrittenMs = performance.now();
    await Promise.all(writers);
    stop = true;

    const failed = results.filter((result) => !result.ok);
    const inFlightAtBreak = results.filter((result) => result.submittedMs < acquiredMs && result.completedMs > breakStartMs);
    expect(failed.length).toBeGreaterThan(0);
    // Refused by the OSDs (ESHUTDOWN: blocklisted), or by the store once it knows (reconnecting).
    for (const result of failed) expect(result.error).toMatch(/ESHUTDOWN|reconnecting/);
    // Nothing A submitted once B held the lock succeeded, and nothing of A's succeeded after B's write was done.
    expect(results.filter((result) => result.ok && result.submittedMs > acquiredMs)).toEqual([]);
    expect(results.filter((result) => result.ok && result.completedMs > bWrittenMs)).toEqual([]);
    expect(same(await readBack(b.store, 0, chunks * chunkBytes), bData.bytes)).toBe(true);
    const path = `${cluster.dir}/flight.raw`;
    rbd("export", "rbd/flight", path);
    expect(same(new Uint8Array(await Bun.file(path).arrayBuffer()).subarray(0, chunks * chunkBytes), bData.bytes)).toBe(true);
    const good = inFlightAtBreak.filter((result) => result.ok);
    console.log(
      `in flight during the break: ${inFlightAtBreak.length} writes of A (${good.length} GOOD: ${good.filter((result) => result.completedMs < acquiredMs).length} heard before B's acquire returned, the rest before B's write was done; ${inFlightAtBreak.length - good.length} refused); ${results.filter((result) => result.ok).length} GOOD writes of A in all; break took ${(acquiredMs - breakStartMs).toFixed(1)} ms`,
    );
  }, 90_000);

  test("an owner doing no I/O learns of the break from the periodic check: onLost once", async () => {
    const a = await open("idle", "a");
    const b = await open("idle", "b");
    const lost: string[] = [];
    a.ownership.onLost = (reason) => lost.push(reason);
    // A write outside ALUA has librbd take the lock by itself: an explicit acquire then must not
    // break (blocklist) its own client.
    await write(a.store, 0, filled(4096, 5));
    await a.ownership.acquire({ breakLiveOwner: true, ownerTag: TAG_A });
    await write(a.store, 0, filled(4096, 6));
    expect(lost).toEqual([]);
    await b.ownership.acquire({ breakLiveOwner: true, ownerTag: TAG_B });
    const brokenAt = performance.now();
    while (lost.length === 0 && performance.now() - brokenAt < 10_000) await Bun.sleep(50);
    const noticedMs = performance.now() - brokenAt;
    expect(lost.length).toBe(1);
    expect(lost[0]).toContain("blocklisted");
    expect(a.ownership.owned).toBe(false);
    await Bun.sleep(2500);
    expect(lost.length).toBe(1);
    console.log(`an idle owner noticed the break after ${noticedMs.toFixed(0)} ms (the store's timer: every 2 s)`);
  }, 60_000);

  test("release() frees the lock: nobody is reported the owner, and the other gateway's implicit acquire succeeds", async () => {
    const a = await open("handover", "a");
    const b = await open("handover", "b");
    await b.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_B });
    expect(await a.ownership.ownerTag()).toBe(TAG_B);
    const releasedAt = performance.now();
    await b.ownership.release();
    const releaseMs = performance.now() - releasedAt;
    expect(b.ownership.owned).toBe(false);
    expect(await b.ownership.ownerTag()).toBeUndefined();
    const startedAt = performance.now();
    await a.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_A });
    const acquireMs = performance.now() - startedAt;
    expect(a.ownership.owned).toBe(true);
    await Bun.sleep(1100); // past b's cached answer
    expect(await b.ownership.ownerTag()).toBe(TAG_A);
    // And back: b's explicit acquire of a lock a releases first needs no break.
    await a.ownership.release();
    await b.ownership.acquire({ breakLiveOwner: true, ownerTag: TAG_B });
    await write(b.store, 0, filled(4096, 3));
    console.log(`release: ${releaseMs.toFixed(1)} ms; implicit acquire after it: ${acquireMs.toFixed(1)} ms`);
  }, 60_000);

  test("an owner killed with SIGKILL: the other gateway's implicit acquire succeeds once its watch has timed out", async () => {
    const holder = `
      import { openBackstore } from ${JSON.stringify(`${import.meta.dir}/../../backstores/open.ts`)};
      const store = await openBackstore(${JSON.stringify(configOf("dead", "a"))}, { deviceKey: "holder", sizeBytes: ${SIZE_BYTES}, blockSizeBytes: ${BLOCK_BYTES} });
      await store.ownership.acquire({ breakLiveOwner: false, ownerTag: 7 });
      console.log("owned");
      await Bun.sleep(120_000);
    `;
    const child = Bun.spawn([process.execPath, "-e", holder], { stdout: "pipe", stderr: "pipe" });
    const said = await firstLineOf(child.stdout);
    expect(said.trim()).toBe("owned");
    const b = await open("dead", "b");
    expect(await b.ownership.ownerTag()).toBe(7);
    child.kill("SIGKILL");
    await child.exited;
    const killedAt = performance.now();
    const { tries } = await retried(() => b.ownership.acquire({ breakLiveOwner: false, ownerTag: TAG_B }), DEAD_OWNER_WAIT_MS);
    const takenMs = performance.now() - killedAt;
    expect(b.ownership.owned).toBe(true);
    await Bun.sleep(1100);
    expect(await b.ownership.ownerTag()).toBe(TAG_B);
    await write(b.store, 0, filled(4096, 4));
    console.log(`a killed owner's lock taken ${(takenMs / 1000).toFixed(1)} s after the kill (${tries} acquire() calls; the cluster's osd_client_watch_timeout is 10 s)`);
    expect(takenMs).toBeLessThan(DEAD_OWNER_WAIT_MS);
  }, 90_000);
});
