// EXTENDED COPY between devices served by different data-plane workers: each worker's copy
// manager finds the other's device by NAA, reads its state from shared memory, and moves chunks
// through the control plane; a peer that leaves or stops makes the copy fail with COPY TARGET
// DEVICE NOT REACHABLE, never with a wrong copy or a crash.
import { afterAll, expect, test } from "bun:test";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import { COPY_TARGET_DEVICE_NOT_REACHABLE } from "../../src/scsi/sense.ts";
import * as support from "../support/cdbs.ts";
import { cdbs, extendedCopyList, type CopySegmentSpec } from "../scsi/helpers.ts";
import { SLOW_READ_MS } from "./slow-store.ts";

const log = { info: () => {}, warn: () => {}, error: () => {} };
const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 2 }, log);
afterAll(() => pool.stop());

const GOOD = 0;
const CHECK_CONDITION = 2;
const SIZE = 8 * 1024 * 1024;
const NOT_REACHABLE: [number, number, number] = [COPY_TARGET_DEVICE_NOT_REACHABLE.key, COPY_TARGET_DEVICE_NOT_REACHABLE.asc, COPY_TARGET_DEVICE_NOT_REACHABLE.ascq];
const SLOW_STORE = new URL("./slow-store.ts", import.meta.url).href;

/** Two devices on different workers (the pool gives a new device to an idle worker first). */
async function pairOnTwoWorkers(second: Parameters<typeof SimWorkerDevice.attach>[1] = {}): Promise<[SimWorkerDevice, SimWorkerDevice]> {
  const a = await SimWorkerDevice.attach(pool, { sizeBytes: SIZE });
  const b = await SimWorkerDevice.attach(pool, { sizeBytes: SIZE, ...second });
  expect(a.worker).not.toBe(b.worker);
  // Each worker hears of the other's new device through its mailbox, a moment after the attach.
  await Bun.sleep(20);
  return [a, b];
}

const naaOf = (device: SimWorkerDevice) => Uint8Array.from(Buffer.from(device.store.naaKey, "hex"));

function copy(on: SimWorkerDevice, naas: Uint8Array[], segments: CopySegmentSpec[]) {
  const list = extendedCopyList(naas, segments, 512);
  return on.submit(cdbs.extendedCopy(list.length), { dataOut: list });
}

/** Commands of at most this many blocks (the devices' hw_max_sectors). */
const PIECE_BLOCKS = 2048;

async function write(device: SimWorkerDevice, lba: number, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length / 512; at += PIECE_BLOCKS) {
    const piece = data.subarray(at * 512, Math.min(data.length, (at + PIECE_BLOCKS) * 512));
    expect((await device.submit(support.write16(lba + at, piece.length / 512), { dataOut: piece })).status).toBe(GOOD);
  }
}

async function read(device: SimWorkerDevice, lba: number, blocks: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < blocks; at += PIECE_BLOCKS) {
    const count = Math.min(PIECE_BLOCKS, blocks - at);
    const reply = await device.submit(support.read16(lba + at, count), { dataInBytes: count * 512 });
    expect(reply.status).toBe(GOOD);
    pieces.push(Buffer.from(reply.dataIn));
  }
  return Buffer.concat(pieces);
}

test("EXTENDED COPY moves data both ways between devices on different workers, in chunks, exactly", async () => {
  const [a, b] = await pairOnTwoWorkers();
  try {
    // 3 MiB: three chunks each way, the last one short of a full chunk by design.
    const blocks = 6000;
    const onA = support.patternBytes(blocks * 512, 11);
    const onB = support.patternBytes(blocks * 512, 12);
    await write(a, 100, onA);
    await write(b, 9000, onB);
    // Issued on A: local source, peer destination; then issued on A again with a peer source.
    expect((await copy(a, [naaOf(a), naaOf(b)], [{ source: 0, destination: 1, blocks, sourceLba: 100, destinationLba: 500 }])).status).toBe(GOOD);
    expect((await copy(a, [naaOf(b), naaOf(a)], [{ source: 0, destination: 1, blocks, sourceLba: 9000, destinationLba: 7000 }])).status).toBe(GOOD);
    // Issued on B, both ends on A (neither is B's own).
    expect((await copy(b, [naaOf(a)], [{ source: 0, destination: 0, blocks: 2000, sourceLba: 100, destinationLba: 13000 }])).status).toBe(GOOD);
    expect((await read(b, 500, blocks)).equals(Buffer.from(onA))).toBe(true);
    expect((await read(a, 7000, blocks)).equals(Buffer.from(onB))).toBe(true);
    expect((await read(a, 13000, 2000)).equals(Buffer.from(onA.subarray(0, 2000 * 512)))).toBe(true);
    // Around the copies, nothing else moved.
    expect((await read(b, 500 + blocks, 8)).equals(Buffer.alloc(8 * 512))).toBe(true);
  } finally {
    await a.detach();
    await b.detach();
  }
});

test("a peer that is stopped, gone, or leaves in the middle of a copy fails it with COPY TARGET DEVICE NOT REACHABLE", async () => {
  const [a, b] = await pairOnTwoWorkers({ openerModule: SLOW_STORE });
  let bDetached = false;
  try {
    const segment = { source: 0, destination: 1, blocks: 4096, sourceLba: 0, destinationLba: 0 };
    // Stopped: the state B publishes after its batch is what A's copy manager checks.
    expect((await b.submit(cdbs.startStop(false))).status).toBe(GOOD);
    await Bun.sleep(20);
    const whileStopped = await copy(a, [naaOf(b), naaOf(a)], [segment]);
    expect(whileStopped.status).toBe(CHECK_CONDITION);
    expect(support.senseTriple(whileStopped.sense)).toEqual(NOT_REACHABLE);
    expect((await b.submit(cdbs.startStop(true))).status).toBe(GOOD);
    await Bun.sleep(20);

    // B's store takes SLOW_READ_MS per read: B leaves while the first of two chunks is read.
    await write(a, 0, support.patternBytes(4096 * 512, 3));
    const midCopy = copy(a, [naaOf(b), naaOf(a)], [segment]);
    await Bun.sleep(SLOW_READ_MS / 4);
    await b.detach();
    bDetached = true;
    const reply = await midCopy;
    expect(reply.status).toBe(CHECK_CONDITION);
    expect(support.senseTriple(reply.sense)).toEqual(NOT_REACHABLE);
    // The first chunk landed whole (B read it before it left); the second never started.
    expect((await read(a, 0, 8)).equals(Buffer.alloc(8 * 512))).toBe(true);
    expect((await read(a, 2048, 8)).equals(Buffer.from(support.patternBytes(4096 * 512, 3).subarray(2048 * 512, 2056 * 512)))).toBe(true);

    // Gone: its NAA names nothing any more.
    const afterwards = await copy(a, [naaOf(b), naaOf(a)], [segment]);
    expect(afterwards.status).toBe(CHECK_CONDITION);
    expect(support.senseTriple(afterwards.sense)).toEqual(NOT_REACHABLE);
    // A serves on.
    expect((await a.submit(support.read10(0, 8), { dataInBytes: 4096 })).status).toBe(GOOD);
  } finally {
    await a.detach();
    if (!bDetached) await b.detach();
  }
});
