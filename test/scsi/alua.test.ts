// ALUA (SPC-4 5.15, docs/ha.md): INQUIRY and VPD 0x83, REPORT and SET TARGET PORT GROUPS, the
// access checks of standby, unavailable and transitioning groups, and the medium's lock moving
// between gateways — two simulated gateways over one fake lock.
import { afterEach, describe, expect, test } from "bun:test";
import { BackstoreError, type MediumOwnership } from "../../backstores/types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { ALUA_STATE_CODES, AluaState, aluaStateFromCode, type AluaConfig, type TargetPortGroupConfig } from "../../src/scsi/alua.ts";
import {
  ASYMMETRIC_ACCESS_STATE_CHANGED,
  INVALID_COMMAND_OPERATION_CODE,
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_PARAMETER_LIST,
  NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION,
  NOT_READY_BECOMING_READY,
  NOT_READY_TARGET_PORT_STANDBY,
  NOT_READY_TARGET_PORT_UNAVAILABLE,
  PARAMETER_LIST_LENGTH_ERROR,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import { cdbs, expectCheck, expectGood, inBothSenseFormats, simDevice, u16At, u32At } from "./helpers.ts";

const SIZE_BYTES = 1 << 20;
const SAS = 0x6;

let devices: SimDevice[] = [];
afterEach(async () => {
  for (const device of devices) {
    device.scsi.close();
    await device.close();
  }
  devices = [];
});

/** Two gateways' groups, declared out of order (RTPG sorts them): gateway A is 1, B is 2. */
const GROUPS: TargetPortGroupConfig[] = [
  { id: 2, name: "gw-b", state: "active-non-optimized", preferred: false },
  { id: 1, name: "gw-a", state: "active-optimized", preferred: true },
];

function aluaConfig(localGroupId: number, overrides: Partial<AluaConfig> = {}): AluaConfig {
  return { groups: GROUPS, localGroupId, protocolIdentifier: SAS, ...overrides };
}

/** The medium's exclusive lock, shared by the gateways' FakeOwnership views of it. */
class FakeLock {
  holder: FakeOwnership | undefined;
  tag: number | undefined;
  /** Whether the holder still watches the image: a dead holder's lock is taken without breaking. */
  holderAlive = true;
}

/** One gateway's view of the lock, recording what the unit asked of it. */
class FakeOwnership implements MediumOwnership {
  readonly lock: FakeLock;
  readonly acquireCalls: { breakLiveOwner: boolean; ownerTag: number }[] = [];
  releaseCalls = 0;
  /** While set, acquire() waits for it (an acquisition in progress). */
  gate: Promise<void> | undefined;
  /** When set, acquire() rejects with it (the cluster not answering). */
  acquireFailure: Error | undefined;
  onLost?: (reason: string) => void;

  constructor(lock: FakeLock) {
    this.lock = lock;
  }

  get owned(): boolean {
    return this.lock.holder === this;
  }

  async acquire(options: { breakLiveOwner: boolean; ownerTag: number }): Promise<void> {
    this.acquireCalls.push(options);
    await this.gate;
    if (this.acquireFailure !== undefined) throw this.acquireFailure;
    const previous = this.lock.holder;
    if (previous !== undefined && previous !== this) {
      if (this.lock.holderAlive && !options.breakLiveOwner) throw new BackstoreError("unavailable", 0, "the lock has a live owner");
      previous.onLost?.("fenced by another gateway");
    }
    this.lock.holder = this;
    this.lock.holderAlive = true;
    this.lock.tag = options.ownerTag;
  }

  async release(): Promise<void> {
    this.releaseCalls += 1;
    if (this.lock.holder !== this) return;
    this.lock.holder = undefined;
    this.lock.tag = undefined;
  }

  async ownerTag(): Promise<number | undefined> {
    return this.lock.tag;
  }
}

/** A memory store that counts reads and carries a medium lock. */
class OwnedBackstore extends MemoryBackstore {
  readonly ownership: FakeOwnership | undefined;
  reads = 0;

  constructor(ownership?: FakeOwnership) {
    super(SIZE_BYTES);
    this.ownership = ownership;
  }

  /** When set, reads fail with it (the cluster refusing this gateway, or not answering). */
  readFailure: BackstoreError | undefined;

  override read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    this.reads += 1;
    if (this.readFailure !== undefined) throw this.readFailure;
    super.read(offsetBytes, lengthBytes, target, targetStartBytes);
  }
}

interface Gateway {
  device: SimDevice;
  store: OwnedBackstore;
}

function gateway(alua: AluaConfig | undefined, ownership?: FakeOwnership): Gateway {
  const store = new OwnedBackstore(ownership);
  const device = simDevice({ backstore: store, sizeBytes: SIZE_BYTES, scsi: { alua } });
  devices.push(device);
  return { device, store };
}

const rtpg = (allocation: number, format = 0) => {
  const cdb = new Uint8Array(12);
  cdb[0] = 0xa3;
  cdb[1] = (format << 5) | 0x0a;
  new DataView(cdb.buffer).setUint32(6, allocation);
  return cdb;
};

const stpg = (listLength: number) => {
  const cdb = new Uint8Array(12);
  cdb[0] = 0xa4;
  cdb[1] = 0x0a;
  new DataView(cdb.buffer).setUint32(6, listLength);
  return cdb;
};

/** SET TARGET PORT GROUPS parameter list: 4 reserved bytes, then [state code, group id] descriptors. */
function stpgList(descriptors: [number, number][]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * descriptors.length);
  descriptors.forEach(([state, id], index) => {
    bytes[4 + 4 * index] = state;
    new DataView(bytes.buffer).setUint16(4 + 4 * index + 2, id);
  });
  return bytes;
}

async function setGroups(device: SimDevice, descriptors: [number, number][]) {
  const list = stpgList(descriptors);
  return device.submit(stpg(list.length), { dataOut: list });
}

async function report(device: SimDevice, format = 0): Promise<Uint8Array> {
  const completion = await device.submit(rtpg(1024, format), { dataInBytes: 1024 });
  expectGood(completion);
  return completion.dataIn;
}

/** [state code, status code] of each group descriptor, in order (one port each). */
function statesOf(data: Uint8Array, headerBytes = 4): { id: number; state: number; status: number }[] {
  const groups = [];
  for (let at = headerBytes; at < data.length; at += 12) groups.push({ id: u16At(data, at + 2), state: data[at]! & 0x0f, status: data[at + 5]! });
  return groups;
}

const AO = ALUA_STATE_CODES["active-optimized"];
const ANO = ALUA_STATE_CODES["active-non-optimized"];
const STANDBY = ALUA_STATE_CODES.standby;
const UNAVAILABLE = ALUA_STATE_CODES.unavailable;
const TRANSITIONING = ALUA_STATE_CODES.transitioning;

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("ALUA configuration", () => {
  test("state codes are SPC-4 table 171's, and codes the unit never takes name no state", () => {
    expect(ALUA_STATE_CODES).toEqual({ "active-optimized": 0, "active-non-optimized": 1, standby: 2, unavailable: 3, transitioning: 0xf });
    for (const [state, code] of Object.entries(ALUA_STATE_CODES)) expect(aluaStateFromCode(code)).toBe(state as never);
    for (const code of [0x4, 0x5, 0xe]) expect(aluaStateFromCode(code)).toBeUndefined();
  });

  test("the constructor refuses ids out of 1..65535, duplicate ids and a local group not among the groups", () => {
    const group = (id: number): TargetPortGroupConfig => ({ id, name: `g${id}`, state: "active-optimized", preferred: false });
    expect(() => new AluaState({ groups: [group(0)], localGroupId: 0, protocolIdentifier: SAS })).toThrow("not in 1..65535");
    expect(() => new AluaState({ groups: [group(65536)], localGroupId: 65536, protocolIdentifier: SAS })).toThrow("not in 1..65535");
    expect(() => new AluaState({ groups: [group(1), group(1)], localGroupId: 1, protocolIdentifier: SAS })).toThrow("used twice");
    expect(() => new AluaState({ groups: [group(1)], localGroupId: 2, protocolIdentifier: SAS })).toThrow("not among the groups");
    expect(() => new AluaState({ groups: [], localGroupId: 1, protocolIdentifier: SAS })).toThrow("at least one");
    expect(new AluaState({ groups: [group(65535)], localGroupId: 65535, protocolIdentifier: SAS }).localState).toBe("active-optimized");
  });
});

describe("INQUIRY with ALUA", () => {
  test("standard data reports TPGS 11b (implicit and explicit) with ALUA, 00b without", async () => {
    const withAlua = gateway(aluaConfig(1)).device;
    const without = gateway(undefined).device;
    const tpgs = async (device: SimDevice) => {
      const completion = await device.submit(cdbs.inquiry(96), { dataInBytes: 96 });
      expectGood(completion);
      return (completion.dataIn[5]! >> 4) & 0x03;
    };
    expect(await tpgs(withAlua)).toBe(0b11);
    expect(await tpgs(without)).toBe(0b00);
  });

  test("VPD 0x83 ends with the relative target port and target port group designators of the local group", async () => {
    const { device } = gateway(aluaConfig(2));
    const completion = await device.submit(cdbs.inquiry(1024, true, 0x83), { dataInBytes: 1024 });
    expectGood(completion);
    const data = completion.dataIn;
    const t10At = 24;
    const portAt = t10At + 4 + data[t10At + 3]!;
    expect([...data.subarray(portAt)]).toEqual([
      ...[0x61, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02],
      ...[0x61, 0x95, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02],
    ]);
    expect(u16At(data, 2)).toBe(portAt + 16 - 4);
  });

  test("VPD 0x83 without ALUA has no target port designators", async () => {
    const { device } = gateway(undefined);
    const data = (await device.submit(cdbs.inquiry(1024, true, 0x83), { dataInBytes: 1024 })).dataIn;
    expect(data.length).toBe(24 + 4 + data[27]!);
  });
});

describe("REPORT TARGET PORT GROUPS", () => {
  test("the length-only format lists every group sorted by id, with PREF, supported states, status and its port", async () => {
    const { device } = gateway(aluaConfig(1));
    expect([...(await report(device))]).toEqual([
      ...[0x00, 0x00, 0x00, 24],
      ...[0x80 | AO, 0x8f, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01],
      ...[ANO, 0x8f, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02],
    ]);
  });

  test("the extended header carries FORMAT TYPE 1 and the implicit transition time, 30 s unless configured", async () => {
    const defaulted = gateway(aluaConfig(1)).device;
    const configured = gateway(aluaConfig(2, { implicitTransitionSeconds: 12 })).device;
    const data = await report(defaulted, 1);
    expect([...data.subarray(0, 8)]).toEqual([0x00, 0x00, 0x00, 24, 0x10, 30, 0x00, 0x00]);
    expect([...data.subarray(8)]).toEqual([...(await report(defaulted, 0)).subarray(4)]);
    expect([...(await report(configured, 1)).subarray(0, 8)]).toEqual([0x00, 0x00, 0x00, 24, 0x10, 12, 0x00, 0x00]);
  });

  test("the allocation length cuts the data; RETURN DATA LENGTH still counts every group", async () => {
    const { device } = gateway(aluaConfig(1));
    const completion = await device.submit(rtpg(10), { dataInBytes: 512 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(10);
    expect(u32At(completion.dataIn, 0)).toBe(24);
  });

  test("a reserved PARAMETER DATA FORMAT is INVALID FIELD IN CDB at byte 1 bit 7", async () => {
    const { device } = gateway(aluaConfig(1));
    await inBothSenseFormats(device, async (format) => {
      for (const reserved of [0b010, 0b111]) {
        expectCheck(await device.submit(rtpg(512, reserved), { dataInBytes: 512 }), INVALID_FIELD_IN_CDB, {
          format,
          field: { inCdb: true, byte: 1, bit: 7 },
        });
      }
    });
  });

  test("two gateways sharing the medium's lock answer the same bytes, before and after one of them takes it", async () => {
    const lock = new FakeLock();
    const a = gateway(aluaConfig(1), new FakeOwnership(lock)).device;
    const b = gateway(aluaConfig(2), new FakeOwnership(lock)).device;
    expect(await report(a)).toEqual(await report(b));
    expectGood(await b.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expectCheck(await b.submit(rtpg(1024), { dataInBytes: 1024 }), ASYMMETRIC_ACCESS_STATE_CHANGED);
    const fromB = await report(b);
    expect(fromB).toEqual(await report(a));
    expect(statesOf(fromB)).toEqual([
      { id: 1, state: ANO, status: 0 },
      { id: 2, state: AO, status: 0 },
    ]);
  });

  test("while this gateway takes the lock, its group reports transitioning and its writes wait", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device } = gateway(aluaConfig(1), ownership);
    let open!: () => void;
    ownership.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const read = device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) });
    await settle();
    expect(statesOf(await report(device)).map((group) => group.state)).toEqual([TRANSITIONING, ANO]);
    open();
    expectGood(await read);
  });
});

describe("SET TARGET PORT GROUPS", () => {
  test("a parameter list length other than 4 + 4n, or beyond Data-Out, is PARAMETER LIST LENGTH ERROR", async () => {
    const { device } = gateway(aluaConfig(1));
    await inBothSenseFormats(device, async (format) => {
      for (const length of [1, 3, 6, 9]) {
        expectCheck(await device.submit(stpg(length), { dataOut: new Uint8Array(length) }), PARAMETER_LIST_LENGTH_ERROR, { format });
      }
      expectCheck(await device.submit(stpg(12), { dataOut: stpgList([[STANDBY, 1]]) }), PARAMETER_LIST_LENGTH_ERROR, { format });
    });
    expect(device.scsi.alua!.localState).toBe("active-optimized");
  });

  test("a zero parameter list length changes nothing and is not an error (SPC-4 6.45)", async () => {
    const { device } = gateway(aluaConfig(1));
    expectGood(await device.submit(stpg(0)));
    expect(device.scsi.alua!.transitions).toBe(0);
  });

  test("an unknown group is INVALID FIELD IN PARAMETER LIST pointing at its TARGET PORT GROUP field, and nothing changes", async () => {
    const { device } = gateway(aluaConfig(1));
    await inBothSenseFormats(device, async (format) => {
      expectCheck(await setGroups(device, [[STANDBY, 1], [ANO, 7]]), INVALID_FIELD_IN_PARAMETER_LIST, {
        format,
        field: { inCdb: false, byte: 10 },
      });
    });
    expect(device.scsi.alua!.localState).toBe("active-optimized");
  });

  test("transitioning, LBA dependent, offline and reserved states are INVALID FIELD IN PARAMETER LIST at the state field", async () => {
    const { device } = gateway(aluaConfig(1));
    await inBothSenseFormats(device, async (format) => {
      for (const state of [TRANSITIONING, 0x4, 0xe, 0x7]) {
        expectCheck(await setGroups(device, [[ANO, 2], [state, 1]]), INVALID_FIELD_IN_PARAMETER_LIST, {
          format,
          field: { inCdb: false, byte: 8, bit: 3 },
        });
      }
    });
    expect(device.scsi.alua!.groupStates().map((group) => group.state)).toEqual(["active-optimized", "active-non-optimized"]);
  });

  test("standby refuses a READ with NOT READY 04/0B before the backstore sees it; RTPG reports standby, altered by STPG", async () => {
    const { device, store } = gateway(aluaConfig(1));
    const changes: string[] = [];
    device.scsi.alua!.onChange = (state) => changes.push(state);
    expectGood(await setGroups(device, [[STANDBY, 1]]));
    await inBothSenseFormats(device, async (format) => {
      expectCheck(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_TARGET_PORT_STANDBY, { format });
    });
    expect(store.reads).toBe(0);
    expect(statesOf(await report(device))[0]).toEqual({ id: 1, state: STANDBY, status: 1 });
    expect(changes).toEqual(["standby"]);
    expect(device.scsi.alua!.transitions).toBe(1);
    expectGood(await setGroups(device, [[AO, 1]]));
    expectGood(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }));
    expect(store.reads).toBe(1);
  });

  test("standby answers INQUIRY, MODE SENSE, READ CAPACITY(16), REQUEST SENSE and RTPG, and refuses TEST UNIT READY, READ CAPACITY(10) and writes", async () => {
    const { device, store } = gateway(aluaConfig(1, { groups: [{ id: 1, name: "a", state: "standby", preferred: false }] }));
    expectGood(await device.submit(cdbs.inquiry(96), { dataInBytes: 96 }));
    expectGood(await device.submit(cdbs.modeSense6(0x3f, 255), { dataInBytes: 255 }));
    expectGood(await device.submit(cdbs.readCapacity16(), { dataInBytes: 32 }));
    expectGood(await device.submit(cdbs.requestSense(252), { dataInBytes: 252 }));
    expectGood(await device.submit(rtpg(512), { dataInBytes: 512 }));
    expectCheck(await device.submit(cdbs.testUnitReady()), NOT_READY_TARGET_PORT_STANDBY);
    expectCheck(await device.submit(cdbs.readCapacity10(), { dataInBytes: 8 }), NOT_READY_TARGET_PORT_STANDBY);
    expectCheck(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), NOT_READY_TARGET_PORT_STANDBY);
    expectCheck(await device.submit(cdbs.reportOpcodes(0), { dataInBytes: 8192 }), NOT_READY_TARGET_PORT_STANDBY);
    expect(store.writes).toEqual([]);
  });

  test("unavailable answers INQUIRY, RTPG, STPG and REQUEST SENSE, and refuses MODE SENSE and READ with NOT READY 04/0C", async () => {
    const { device, store } = gateway(aluaConfig(1));
    expectGood(await setGroups(device, [[UNAVAILABLE, 1]]));
    expectGood(await device.submit(cdbs.inquiry(96), { dataInBytes: 96 }));
    expectGood(await device.submit(rtpg(512), { dataInBytes: 512 }));
    expectGood(await device.submit(cdbs.requestSense(252), { dataInBytes: 252 }));
    expectCheck(await device.submit(cdbs.modeSense6(0x3f, 255), { dataInBytes: 255 }), NOT_READY_TARGET_PORT_UNAVAILABLE);
    expectCheck(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_TARGET_PORT_UNAVAILABLE);
    expectCheck(await device.submit(cdbs.testUnitReady()), NOT_READY_TARGET_PORT_UNAVAILABLE);
    expect(store.reads).toBe(0);
    expectGood(await setGroups(device, [[ANO, 1]]));
    expectGood(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }));
  });

  test("transitioning answers INQUIRY, RTPG and REQUEST SENSE, and refuses STPG, TEST UNIT READY and READ with NOT READY 04/0A", async () => {
    const { device, store } = gateway(aluaConfig(1, { groups: [{ id: 1, name: "a", state: "transitioning", preferred: false }] }));
    expectGood(await device.submit(cdbs.inquiry(96), { dataInBytes: 96 }));
    expectGood(await device.submit(rtpg(512), { dataInBytes: 512 }));
    expectGood(await device.submit(cdbs.requestSense(252), { dataInBytes: 252 }));
    expectCheck(await setGroups(device, [[AO, 1]]), NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION);
    expectCheck(await device.submit(cdbs.testUnitReady()), NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION);
    expectCheck(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION);
    expect(store.reads).toBe(0);
  });

  test("REPORT SUPPORTED OPERATION CODES lists both commands on a unit with ALUA", async () => {
    const { device } = gateway(aluaConfig(1));
    for (const [opcode, serviceAction] of [[0xa3, 0x0a], [0xa4, 0x0a]] as const) {
      const completion = await device.submit(cdbs.reportOpcodes(2, opcode, serviceAction), { dataInBytes: 64 });
      expectGood(completion);
      expect(completion.dataIn[1]! & 0x07).toBe(0x03);
      expect(u16At(completion.dataIn, 2)).toBe(12);
    }
  });
});

describe("the medium's lock", () => {
  test("the first writes take the lock once for eight concurrent writes, then ASYMMETRIC ACCESS STATE CHANGED", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device, store } = gateway(aluaConfig(2), ownership);
    const changes: string[] = [];
    device.scsi.alua!.onChange = (state) => changes.push(state);
    let open!: () => void;
    ownership.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const writes = Array.from({ length: 8 }, (_, index) => device.submit(cdbs.write10(index, 1), { dataOut: new Uint8Array(512) }));
    await settle();
    expect(ownership.acquireCalls).toEqual([{ breakLiveOwner: false, ownerTag: 2 }]);
    expect(store.writes.length).toBe(0);
    open();
    for (const completion of await Promise.all(writes)) expectGood(completion);
    expect(store.writes.length).toBe(8);
    expect(ownership.acquireCalls.length).toBe(1);
    expect(device.scsi.alua!.ownsMedium).toBe(true);
    expect(changes).toEqual(["active-optimized"]);
    expectCheck(await device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    expectGood(await device.submit(cdbs.testUnitReady()));
    expect(statesOf(await report(device))).toEqual([
      { id: 1, state: ANO, status: 0 },
      { id: 2, state: AO, status: 0 },
    ]);
  });

  test("reads on a gateway without the lock run at once and take nothing (a new path's partition scan while another gateway owns the lock)", async () => {
    const lock = new FakeLock();
    const a = gateway(aluaConfig(1), new FakeOwnership(lock));
    const bOwnership = new FakeOwnership(lock);
    const b = gateway(aluaConfig(2), bOwnership);
    expectGood(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    for (let lba = 0; lba < 8; lba += 1) expectGood(await b.device.submit(cdbs.read10(lba, 1), { dataInBytes: 512 }));
    expect(b.store.reads).toBe(8);
    expect(bOwnership.acquireCalls).toEqual([]);
    expect(lock.tag).toBe(1);
  });

  test("a medium out of reach answers BECOMING READY to the lock's owner, but TARGET PORT IN UNAVAILABLE STATE to a gateway fenced by another (Linux fails that path at once; it retries TRANSITION in place for 180 s)", async () => {
    const lock = new FakeLock();
    const a = gateway(aluaConfig(1), new FakeOwnership(lock));
    const b = gateway(aluaConfig(2), new FakeOwnership(lock));
    expectGood(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expectCheck(await a.device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    a.store.readFailure = new BackstoreError("unavailable", 0, "cluster not answering");
    expectCheck(await a.device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_BECOMING_READY);
    // b takes the lock by STPG (fencing a); a's I/O is refused by the cluster from then on.
    expectGood(await setGroups(b.device, [[AO, 2]]));
    a.store.readFailure = new BackstoreError("unavailable", 0, "blocklisted");
    expectCheck(await a.device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    expectCheck(await a.device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_TARGET_PORT_UNAVAILABLE);
    // Its writes want the lock back, which b (alive) keeps: refused the same way.
    a.store.readFailure = undefined;
    expectCheck(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), NOT_READY_TARGET_PORT_UNAVAILABLE);
  });

  test("path probes (TEST UNIT READY, INQUIRY, RTPG) never take the lock", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device } = gateway(aluaConfig(1), ownership);
    expectGood(await device.submit(cdbs.testUnitReady()));
    expectGood(await device.submit(cdbs.inquiry(96), { dataInBytes: 96 }));
    await report(device);
    expect(ownership.acquireCalls).toEqual([]);
  });

  test("a live owner makes the implicit acquisition fail with NOT READY 04/0A, and this gateway's group is non-optimized", async () => {
    const lock = new FakeLock();
    const a = gateway(aluaConfig(1), new FakeOwnership(lock));
    const b = gateway(aluaConfig(2), new FakeOwnership(lock));
    expectGood(await b.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    await inBothSenseFormats(a.device, async (format) => {
      expectCheck(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION, { format });
    });
    expect(a.store.reads).toBe(0);
    expect(a.device.scsi.alua!.localState).toBe("active-non-optimized");
    expect(statesOf(await report(a.device)).map((group) => group.state)).toEqual([ANO, AO]);
  });

  test("a dead owner's lock is taken by the next write", async () => {
    const lock = new FakeLock();
    const a = gateway(aluaConfig(1), new FakeOwnership(lock));
    const b = gateway(aluaConfig(2), new FakeOwnership(lock));
    expectGood(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    lock.holderAlive = false;
    expectGood(await b.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expect(lock.tag).toBe(2);
  });

  test("STPG making the local group active/optimized breaks a live owner's lock; the old owner is told and RTPG shows the new one", async () => {
    const lock = new FakeLock();
    const aOwnership = new FakeOwnership(lock);
    const bOwnership = new FakeOwnership(lock);
    const a = gateway(aluaConfig(1), aOwnership);
    const b = gateway(aluaConfig(2), bOwnership);
    expectGood(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expectCheck(await a.device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);

    expectGood(await setGroups(b.device, [[AO, 2]]));
    expect(bOwnership.acquireCalls).toEqual([{ breakLiveOwner: true, ownerTag: 2 }]);
    expect(b.device.scsi.alua!.localState).toBe("active-optimized");
    // No unit attention for B's own STPG; A lost the lock and hears of it.
    expectGood(await b.device.submit(cdbs.testUnitReady()));
    expect(a.device.scsi.alua!.localState).toBe("active-non-optimized");
    expect(a.device.scsi.alua!.transitions).toBe(1);
    expectCheck(await a.device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    expect(statesOf(await report(a.device)).map((group) => group.state)).toEqual([ANO, AO]);
    expect(await report(a.device)).toEqual(await report(b.device));
    // A does not take the lock back implicitly while B lives, and says it is fenced (UNAVAILABLE: Linux moves the write to B at once).
    expectCheck(await a.device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }), NOT_READY_TARGET_PORT_UNAVAILABLE);
  });

  test("STPG making the local group standby gives the lock up", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device } = gateway(aluaConfig(1), ownership);
    const changes: string[] = [];
    device.scsi.alua!.onChange = (state) => changes.push(state);
    expectGood(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    // Configured active/optimized already: the lock moved, the state did not (no transition counted).
    expect(changes).toEqual(["active-optimized"]);
    expect(device.scsi.alua!.transitions).toBe(0);
    expectCheck(await device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    expectGood(await setGroups(device, [[STANDBY, 1]]));
    expect(ownership.releaseCalls).toBe(1);
    expect(ownership.owned).toBe(false);
    expect(device.scsi.alua!.localState).toBe("standby");
    expectCheck(await device.submit(cdbs.read10(0, 1), { dataInBytes: 512 }), NOT_READY_TARGET_PORT_STANDBY);
    expect(ownership.acquireCalls.length).toBe(1);
  });

  test("STPG making a peer active/optimized while this gateway owns the lock gives it up", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device } = gateway(aluaConfig(1), ownership);
    expectGood(await device.submit(cdbs.write10(0, 1), { dataOut: new Uint8Array(512) }));
    expectCheck(await device.submit(cdbs.testUnitReady()), ASYMMETRIC_ACCESS_STATE_CHANGED);
    expectGood(await setGroups(device, [[AO, 2]]));
    expect(ownership.releaseCalls).toBe(1);
    expect(device.scsi.alua!.groupStates().map((group) => group.state)).toEqual(["active-non-optimized", "active-optimized"]);
  });

  test("a failed explicit acquisition answers the store's sense and changes no state", async () => {
    const ownership = new FakeOwnership(new FakeLock());
    const { device } = gateway(aluaConfig(2), ownership);
    ownership.acquireFailure = new BackstoreError("unavailable", 0, "cluster not answering");
    expectCheck(await setGroups(device, [[AO, 2]]), NOT_READY_BECOMING_READY);
    expect(device.scsi.alua!.groupStates().map((group) => group.state)).toEqual(["active-optimized", "active-non-optimized"]);
    expect(device.scsi.alua!.transitions).toBe(0);
  });
});

describe("without ALUA", () => {
  test("RTPG and STPG answer as before: a service action MAINTENANCE IN lacks, an opcode the unit lacks", async () => {
    const { device } = gateway(undefined);
    await inBothSenseFormats(device, async (format) => {
      expectCheck(await device.submit(rtpg(512), { dataInBytes: 512 }), INVALID_FIELD_IN_CDB, { format, field: { inCdb: true, byte: 1, bit: 4 } });
      expectCheck(await setGroups(device, [[AO, 1]]), INVALID_COMMAND_OPERATION_CODE, { format, field: { inCdb: true, byte: 0 } });
    });
    expect(device.scsi.alua).toBeUndefined();
  });
});
