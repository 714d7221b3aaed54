// Two gateways serving one rbd image with ALUA, against a live cluster (docs/ha.md): the SCSI
// layer's target port groups driven by the image's exclusive lock. Gateway "a" and "b" are two
// units over two rados clients (the second asks for another OSD timeout, so it gets a client of
// its own), each with its own group and the other's as a peer, exactly as two appliances would be
// configured. Commands go through the simulator's ring.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openBackstore } from "../../backstores/open.ts";
import { ALUA_STATE_CODES, type AluaConfig } from "../../src/scsi/alua.ts";
import { DEFAULT_IDENTITY } from "../../src/scsi/device.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import type { Completion } from "../../src/sim/kernel-sim.ts";
import * as cdbs from "../support/cdbs.ts";
import { rbdCli, startCephCluster, type CephCluster } from "../support/ceph-cluster.ts";

const BLOCK_BYTES = 512;
const SIZE_BYTES = 64 * 1024 * 1024;
const GOOD = 0;
const CHECK_CONDITION = 2;

let cluster: CephCluster;
const devices: SimDevice[] = [];

beforeAll(async () => {
  cluster = await startCephCluster();
  rbdCli(cluster.confPath, "create", "rbd/ha", "--size", "64M");
}, 240_000);

afterAll(async () => {
  for (const device of devices.splice(0)) await device.close();
  await cluster?.stop();
}, 120_000);

function aluaFor(localGroupId: number): AluaConfig {
  return {
    groups: [
      { id: 1, name: "gw-a", state: "active-optimized", preferred: false },
      { id: 2, name: "gw-b", state: "active-non-optimized", preferred: false },
    ],
    localGroupId,
    protocolIdentifier: 0x5,
  };
}

async function gateway(name: "a" | "b"): Promise<SimDevice> {
  const config = `rbd/rbd/ha${name === "b" ? ";osd_op_timeout=19" : ""};conf=${cluster.confPath}`;
  const backstore = await openBackstore(config, { deviceKey: `test/ha-${name}`, sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
  const device = new SimDevice({
    backstore,
    sizeBytes: SIZE_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    scsi: { name: `ha-${name}`, identity: { ...DEFAULT_IDENTITY, unitSerial: `ha-${name}` }, alua: aluaFor(name === "a" ? 1 : 2), maxTransferBlocks: 2048 },
    sim: { dataBlockCount: 4096 },
  });
  devices.push(device);
  return device;
}

const rtpg = () => Uint8Array.of(0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0);
const stpg = (length: number) => Uint8Array.of(0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, length, 0, 0);

async function report(device: SimDevice): Promise<{ bytes: string; states: Record<number, number> }> {
  const completion = await submitPastAttention(device, rtpg(), { dataInBytes: 256 });
  expect(completion.status).toBe(GOOD);
  const data = completion.dataIn;
  const length = (data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!;
  const states: Record<number, number> = {};
  for (let at = 4; at < 4 + length; at += 8 + 4 * data[at + 7]!) states[(data[at + 2]! << 8) | data[at + 3]!] = data[at]! & 0x0f;
  return { bytes: Buffer.from(data.subarray(0, 4 + length)).toString("hex"), states };
}

function senseOf(completion: Completion): [number, number, number] {
  return [completion.sense[2]! & 0x0f, completion.sense[12]!, completion.sense[13]!];
}

/** Submits until the command gets something other than a unit attention (as an initiator would). */
async function submitPastAttention(device: SimDevice, cdb: Uint8Array, options: Parameters<SimDevice["submit"]>[1]): Promise<Completion> {
  for (let attempt = 0; ; attempt += 1) {
    const completion = await device.submit(cdb, options);
    if (completion.status !== CHECK_CONDITION || (completion.sense[2]! & 0x0f) !== 0x06 || attempt === 4) return completion;
  }
}

describe("two gateways, one rbd image, ALUA by the image's lock", () => {
  test("first I/O takes the lock; both paths then report the same groups; the other gateway's I/O waits; STPG fails over and fences the old owner", async () => {
    const a = await gateway("a");
    const b = await gateway("b");

    // Path probes and reads move nothing: TEST UNIT READY, RTPG and a READ on both before any write.
    expect((await a.submit(cdbs.TEST_UNIT_READY)).status).toBe(GOOD);
    expect((await b.submit(cdbs.TEST_UNIT_READY)).status).toBe(GOOD);
    expect((await report(a)).bytes).toBe((await report(b)).bytes);
    expect((await a.submit(cdbs.read10(0, 8), { dataInBytes: 4096 })).status).toBe(GOOD);
    expect((await b.submit(cdbs.read10(0, 8), { dataInBytes: 4096 })).status).toBe(GOOD);
    expect(a.scsi.alua!.ownsMedium).toBe(false);
    expect(b.scsi.alua!.ownsMedium).toBe(false);

    // Gateway a's first write takes the lock (implicitly) and is served.
    const first = cdbs.patternBytes(4096, 1);
    expect((await a.submit(cdbs.write10(0, 8), { dataOut: first })).status).toBe(GOOD);
    expect(a.scsi.alua!.ownsMedium).toBe(true);
    // Its next command hears that the access states changed.
    const attention = await a.submit(cdbs.TEST_UNIT_READY);
    expect(senseOf(attention)).toEqual([0x06, 0x2a, 0x06]);

    // The same answer down both paths: gw-a active/optimized, gw-b active/non-optimized
    // (b learns the owner from the tag the owner published; its cache lives 1 s).
    await Bun.sleep(1100);
    const [fromA, fromB] = [await report(a), await report(b)];
    expect(fromA.states).toEqual({ 1: ALUA_STATE_CODES["active-optimized"], 2: ALUA_STATE_CODES["active-non-optimized"] });
    expect(fromB.bytes).toBe(fromA.bytes);

    // Reads on b run without the lock (a new path's partition scan must not wait for it) and
    // see a's data; a keeps the lock.
    const seen = await b.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
    expect(seen.status).toBe(GOOD);
    expect(Buffer.from(seen.dataIn).equals(Buffer.from(first))).toBe(true);

    // A write on b while a lives is not executed: NOT READY, ASYMMETRIC ACCESS STATE TRANSITION.
    const refused = await b.submit(cdbs.write10(0, 8), { dataOut: cdbs.patternBytes(4096, 2) });
    expect(refused.status).toBe(CHECK_CONDITION);
    expect(senseOf(refused)).toEqual([0x02, 0x04, 0x0a]);
    expect(a.scsi.alua!.ownsMedium).toBe(true);

    // SET TARGET PORT GROUPS on b: gw-b active/optimized. b breaks a's lock (a is blocklisted
    // before b owns it), then b's writes land.
    const list = Uint8Array.of(0, 0, 0, 0, ALUA_STATE_CODES["active-optimized"], 0, 0, 2);
    expect((await b.submit(stpg(list.length), { dataOut: list })).status).toBe(GOOD);
    expect(b.scsi.alua!.ownsMedium).toBe(true);
    const second = cdbs.patternBytes(4096, 3);
    expect((await submitPastAttention(b, cdbs.write10(0, 8), { dataOut: second })).status).toBe(GOOD);

    // The old owner is fenced: its write does not complete GOOD, and the data stays b's.
    const late = await submitPastAttention(a, cdbs.write10(0, 8), { dataOut: cdbs.patternBytes(4096, 4) });
    expect(late.status).toBe(CHECK_CONDITION);
    expect(senseOf(late)[0]).toBe(0x02);
    const read = await submitPastAttention(b, cdbs.read10(0, 8), { dataInBytes: 4096 });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(second))).toBe(true);
    expect(a.scsi.alua!.ownsMedium).toBe(false);

    // Both paths agree again, now with gw-b active/optimized.
    await Bun.sleep(1100);
    const [afterA, afterB] = [await report(a), await report(b)];
    expect(afterB.states).toEqual({ 1: ALUA_STATE_CODES["active-non-optimized"], 2: ALUA_STATE_CODES["active-optimized"] });
    expect(afterA.bytes).toBe(afterB.bytes);
  }, 120_000);
});
