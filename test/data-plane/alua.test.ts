// ALUA on a data-plane worker: the groups serve discovered at attach reach the unit on its worker
// (TPGS, REPORT TARGET PORT GROUPS), a state change there comes back to the control plane (which
// mirrors it into configfs) and into the shared gauges /metrics reads — without a message per
// command.
import { afterAll, expect, test } from "bun:test";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { renderMetrics } from "../../src/metrics/prometheus.ts";
import { ALUA_STATE_CODES, type AluaConfig } from "../../src/scsi/alua.ts";
import { SimWorkerDevice } from "../../src/sim/sim-worker-device.ts";
import * as cdbs from "../support/cdbs.ts";

const log = { info: () => {}, warn: () => {}, error: () => {} };
const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, log);
afterAll(() => pool.stop());

const GOOD = 0;
const CHECK_CONDITION = 2;

const ALUA: AluaConfig = {
  groups: [
    { id: 1, name: "gw-a", state: "active-optimized", preferred: true },
    { id: 2, name: "gw-b", state: "active-non-optimized", preferred: false },
  ],
  localGroupId: 1,
  protocolIdentifier: 0x5,
};

const rtpg = (allocation: number) => Uint8Array.of(0xa3, 0x0a, 0, 0, 0, 0, allocation >> 24, (allocation >> 16) & 0xff, (allocation >> 8) & 0xff, allocation & 0xff, 0, 0);
const stpg = (length: number) => Uint8Array.of(0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, length, 0, 0);
const gauges = { netlinkEvents: {}, reconfigsVetoed: 0, netlinkOverflows: 0, repliesOn: true, startedAtSeconds: 0 };

test("a device attached with ALUA groups reports them from its worker, and a state change reaches the control plane and /metrics", async () => {
  const device = await SimWorkerDevice.attach(pool, { name: "ha0", alua: ALUA });
  try {
    const inquiry = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
    expect(inquiry.status).toBe(GOOD);
    expect((inquiry.dataIn[5]! >> 4) & 0x3).toBe(0x3);

    const report = await device.submit(rtpg(64), { dataInBytes: 64 });
    expect(report.status).toBe(GOOD);
    // Two descriptors of 8 + 4 bytes: gw-a active/optimized and preferred, gw-b non-optimized.
    expect(report.dataIn[0]! * 2 ** 24 + (report.dataIn[1]! << 16) + (report.dataIn[2]! << 8) + report.dataIn[3]!).toBe(24);
    expect(report.dataIn[4]).toBe(0x80 | ALUA_STATE_CODES["active-optimized"]);
    expect((report.dataIn[6]! << 8) | report.dataIn[7]!).toBe(1);
    expect(report.dataIn[16]! & 0x0f).toBe(ALUA_STATE_CODES["active-non-optimized"]);
    expect((report.dataIn[18]! << 8) | report.dataIn[19]!).toBe(2);

    await Bun.sleep(20);
    expect(device.alua.groupId).toBe(1);
    expect(device.alua.stateCode).toBe(ALUA_STATE_CODES["active-optimized"]);
    expect(device.alua.ownsMedium).toBeUndefined();

    // SET TARGET PORT GROUPS: this gateway's group to standby. I/O is refused from then on,
    // the control plane hears of it, and the gauges follow.
    const list = Uint8Array.of(0, 0, 0, 0, ALUA_STATE_CODES.standby, 0, 0, 1);
    expect((await device.submit(stpg(list.length), { dataOut: list })).status).toBe(GOOD);
    const read = await device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
    expect(read.status).toBe(CHECK_CONDITION);
    expect([read.sense[2]! & 0x0f, read.sense[12], read.sense[13]]).toEqual([0x02, 0x04, 0x0b]);
    await Bun.sleep(50);
    expect(device.aluaChanges).toEqual(["standby"]);
    expect(device.alua.stateCode).toBe(ALUA_STATE_CODES.standby);
    expect(device.alua.transitions).toBe(1);
    const text = renderMetrics([{ info: { deviceName: "ha0" }, metrics: device.metrics, engine: device.engine, alua: device.alua }], gauges);
    expect(text).toContain('tcmu_appliance_alua_state{device="ha0",group="1",state="standby"} 1');
    expect(text).toContain('tcmu_appliance_alua_state{device="ha0",group="1",state="active-optimized"} 0');
    expect(text).toContain('tcmu_appliance_alua_transitions_total{device="ha0"} 1');
    expect(text).not.toContain("alua_lock_owned");
  } finally {
    await device.detach();
  }
});

test("a device without ALUA groups publishes none and /metrics has no ALUA families", async () => {
  const device = await SimWorkerDevice.attach(pool, { name: "plain0" });
  try {
    expect((await device.submit(cdbs.TEST_UNIT_READY)).status).toBe(GOOD);
    await Bun.sleep(20);
    expect(device.alua.groupId).toBeUndefined();
    const text = renderMetrics([{ info: { deviceName: "plain0" }, metrics: device.metrics, engine: device.engine, alua: device.alua }], gauges);
    expect(text).not.toContain("alua_");
  } finally {
    await device.detach();
  }
});

test("ALUA groups made after attach (create makes them after enable) are served from then on; the data stays", async () => {
  const device = await SimWorkerDevice.attach(pool, { name: "late0" });
  try {
    const data = cdbs.patternBytes(4096, 11);
    expect((await device.submit(cdbs.write10(8, 8), { dataOut: data })).status).toBe(GOOD);
    const before = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
    expect((before.dataIn[5]! >> 4) & 0x3).toBe(0);
    expect((await device.submit(rtpg(64), { dataInBytes: 64 })).status).toBe(CHECK_CONDITION);

    await device.setAlua(ALUA);
    const after = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
    expect((after.dataIn[5]! >> 4) & 0x3).toBe(0x3);
    expect((await device.submit(rtpg(64), { dataInBytes: 64 })).status).toBe(GOOD);
    const read = await device.submit(cdbs.read10(8, 8), { dataInBytes: 4096 });
    expect(read.status).toBe(GOOD);
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    await Bun.sleep(20);
    expect(device.alua.groupId).toBe(1);

    // And gone again: TPGS 0, REPORT TARGET PORT GROUPS unknown.
    await device.setAlua(undefined);
    const gone = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
    expect((gone.dataIn[5]! >> 4) & 0x3).toBe(0);
    await Bun.sleep(20);
    expect(device.alua.groupId).toBeUndefined();
  } finally {
    await device.detach();
  }
});
