import { afterEach, describe, expect, test } from "bun:test";
import { BackstoreError, type IoResult } from "../../backstores/types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { DeviceRegistry } from "../../src/scsi/device-registry.ts";
import type { CopyUnit } from "../../src/scsi/logical-unit.ts";
import {
  COPY_TARGET_DEVICE_NOT_REACHABLE,
  INVALID_FIELD_IN_COMMAND_IU,
  INVALID_FIELD_IN_PARAMETER_LIST,
  LBA_OUT_OF_RANGE,
  PARAMETER_LIST_LENGTH_ERROR,
  TOO_MANY_SEGMENT_DESCRIPTORS,
  TOO_MANY_TARGET_DESCRIPTORS,
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE,
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE,
  WRITE_ERROR,
  WRITE_PROTECTED,
} from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { MemoryBackstore } from "./backstores.ts";
import {
  cdbs,
  expectCheck,
  expectGood,
  extendedCopyList,
  inBothSenseFormats,
  pattern,
  simDevice,
  u16At,
  u32At,
  type CopySegmentSpec,
} from "./helpers.ts";

const devices: SimDevice[] = [];
afterEach(async () => {
  for (const device of devices.splice(0)) {
    device.scsi.close();
    await device.close();
  }
});

const SIZE = 4 * 1024 * 1024;
const BLOCKS = SIZE / 512;

function open(options: Parameters<typeof simDevice>[0] = {}): SimDevice {
  const device = simDevice({ sizeBytes: SIZE, ...options });
  devices.push(device);
  return device;
}

async function copy(on: SimDevice, naas: Uint8Array[], segments: CopySegmentSpec[], diskBlockLength = 512) {
  const list = extendedCopyList(naas, segments, diskBlockLength);
  return on.submit(cdbs.extendedCopy(list.length), { dataOut: list });
}

async function readBlocks(device: SimDevice, lba: number, blocks: number): Promise<Uint8Array> {
  const completion = await device.submit(cdbs.read16(lba, blocks), { dataInBytes: blocks * 512 });
  expectGood(completion);
  return completion.dataIn;
}

/** Received by A: push 8 blocks A → B and pull 4 blocks B → A in one copy; both arrive. */
async function pushAndPull(a: SimDevice, b: SimDevice, seed: number): Promise<void> {
  const first = pattern(8 * 512, seed);
  const second = pattern(4 * 512, seed + 1);
  expectGood(await a.submit(cdbs.write10(100, 8), { dataOut: first }));
  expectGood(await b.submit(cdbs.write10(7, 4), { dataOut: second }));
  expectGood(
    await copy(a, [a.scsi.naa, b.scsi.naa], [
      { source: 0, destination: 1, blocks: 8, sourceLba: 100, destinationLba: 50 },
      { source: 1, destination: 0, blocks: 4, sourceLba: 7, destinationLba: 0 },
    ]),
  );
  expect(await readBlocks(b, 50, 8)).toEqual(first);
  expect(await readBlocks(a, 0, 4)).toEqual(second);
}

describe("EXTENDED COPY (LID1)", () => {
  test("copies blocks within the receiving device, named by its own NAA", async () => {
    const a = open();
    const data = pattern(16 * 512, 1);
    expectGood(await a.submit(cdbs.write10(0, 16), { dataOut: data }));
    expectGood(await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks: 16, sourceLba: 0, destinationLba: BLOCKS - 16 }]));
    expect(await readBlocks(a, BLOCKS - 16, 16)).toEqual(data);
  });

  test("copies between two devices of this process, pushing and pulling, segment after segment", async () => {
    const a = open();
    const b = open();
    await pushAndPull(a, b, 2);
  });

  test("overlapping ranges on one device copy as if through a buffer, in both directions, across chunks", async () => {
    const store = new MemoryBackstore(SIZE);
    const a = open({ backstore: store });
    const blocks = 3000;
    const data = pattern(blocks * 512, 4);
    store.poke(1000 * 512, data);
    expectGood(await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks, sourceLba: 1000, destinationLba: 1001 }]));
    expect(store.peek(1001 * 512, blocks * 512)).toEqual(data);
    expectGood(await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks, sourceLba: 1001, destinationLba: 1000 }]));
    expect(store.peek(1000 * 512, blocks * 512)).toEqual(data);
  });

  test("an empty parameter list, and a segment of zero blocks, copy nothing and are GOOD", async () => {
    const a = open();
    expectGood(await a.submit(cdbs.extendedCopy(0)));
    expectGood(await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks: 0, sourceLba: 0, destinationLba: 1 }]));
  });

  test("a device that is not served here, or was closed, is COPY ABORTED / COPY TARGET DEVICE NOT REACHABLE", async () => {
    const a = open();
    const b = open();
    const stranger = new Uint8Array(16);
    stranger.set([0x60, 0x01, 0x40, 0x5f, 0xff, 0xee]);
    const segment = { source: 0, destination: 1, blocks: 1, sourceLba: 0, destinationLba: 0 };
    await inBothSenseFormats(a, async (format) => {
      expectCheck(await copy(a, [a.scsi.naa, stranger], [segment]), COPY_TARGET_DEVICE_NOT_REACHABLE, { format });
    });
    b.scsi.close();
    expectCheck(await copy(a, [a.scsi.naa, b.scsi.naa], [segment]), COPY_TARGET_DEVICE_NOT_REACHABLE);
  });

  test("ranges beyond either device are LBA OUT OF RANGE; a read-only destination is WRITE PROTECTED", async () => {
    const a = open();
    const readOnly = open({ backstore: new MemoryBackstore(SIZE, { readOnly: true }) });
    expectCheck(
      await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks: 2, sourceLba: BLOCKS - 1, destinationLba: 0 }]),
      LBA_OUT_OF_RANGE,
      { information: BLOCKS - 1 },
    );
    expectCheck(
      await copy(a, [a.scsi.naa], [{ source: 0, destination: 0, blocks: 1, sourceLba: 0, destinationLba: BLOCKS }]),
      LBA_OUT_OF_RANGE,
      { information: BLOCKS },
    );
    expectCheck(
      await copy(a, [a.scsi.naa, readOnly.scsi.naa], [{ source: 0, destination: 1, blocks: 1, sourceLba: 0, destinationLba: 0 }]),
      WRITE_PROTECTED,
    );
  });

  test("malformed parameter lists are refused with the descriptor field named", async () => {
    const a = open();
    const naa = a.scsi.naa;
    const segment = { source: 0, destination: 0, blocks: 1, sourceLba: 0, destinationLba: 1 };
    const submit = (list: Uint8Array, length = list.length) => a.submit(cdbs.extendedCopy(length), { dataOut: list });
    const field = (byte: number, bit?: number) => ({ field: { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) } });

    expectCheck(await submit(new Uint8Array(8)), PARAMETER_LIST_LENGTH_ERROR);
    const valid = extendedCopyList([naa], [segment], 512);
    expectCheck(await submit(valid, valid.length + 32), INVALID_FIELD_IN_COMMAND_IU);
    const cut = valid.slice(0, valid.length - 4);
    expectCheck(await submit(cut), PARAMETER_LIST_LENGTH_ERROR);

    const inline = valid.slice();
    new DataView(inline.buffer).setUint32(12, 4);
    expectCheck(await submit(inline), INVALID_FIELD_IN_PARAMETER_LIST, field(12));

    const targetType = valid.slice();
    targetType[16] = 0xe0;
    expectCheck(await submit(targetType), UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, field(16));
    const segmentType = valid.slice();
    segmentType[48] = 0x0a;
    expectCheck(await submit(segmentType), UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, field(48));
    const segmentLength = valid.slice();
    segmentLength[51] = 0x10;
    expectCheck(await submit(segmentLength), INVALID_FIELD_IN_PARAMETER_LIST, field(50));

    const codeSet = valid.slice();
    codeSet[20] = 0x02;
    expectCheck(await submit(codeSet), INVALID_FIELD_IN_PARAMETER_LIST, field(20, 3));
    const designatorType = valid.slice();
    designatorType[21] = 0x02;
    expectCheck(await submit(designatorType), INVALID_FIELD_IN_PARAMETER_LIST, field(21, 3));
    const nullDevice = valid.slice();
    nullDevice[17] = 0x20;
    expectCheck(await submit(nullDevice), INVALID_FIELD_IN_PARAMETER_LIST, field(17, 5));

    const badIndex = extendedCopyList([naa], [{ ...segment, destination: 1 }], 512);
    expectCheck(await submit(badIndex), INVALID_FIELD_IN_PARAMETER_LIST, field(16 + 32 + 6));
    const blockLength = extendedCopyList([naa], [segment], 4096);
    expectCheck(await submit(blockLength), INVALID_FIELD_IN_PARAMETER_LIST, field(16 + 29));

    const nineTargets = extendedCopyList(Array.from({ length: 9 }, () => naa), [segment]);
    expectCheck(await submit(nineTargets), TOO_MANY_TARGET_DESCRIPTORS);
    const nineSegments = extendedCopyList([naa], Array.from({ length: 9 }, () => segment));
    expectCheck(await submit(nineSegments), TOO_MANY_SEGMENT_DESCRIPTORS);
    const longLists = extendedCopyList([naa], Array.from({ length: 40 }, () => segment));
    expectCheck(await submit(longLists), PARAMETER_LIST_LENGTH_ERROR);
  });
});

/**
 * A peer that is only a CopyUnit, as a proxy for a device on another thread would be: every
 * read and write completes asynchronously, and each lock and block call is recorded.
 */
class ProxyUnit implements CopyUnit {
  readonly calls: string[] = [];
  failWritesAt: number | undefined;
  readonly #target: SimDevice;

  constructor(target: SimDevice) {
    this.#target = target;
  }

  get naaKey(): string {
    return this.#target.scsi.naaKey;
  }
  get blockSizeBytes(): number {
    return this.#target.scsi.blockSizeBytes;
  }
  get capacityBlocks(): number {
    return this.#target.scsi.capacityBlocks;
  }
  get closed(): boolean {
    return this.#target.scsi.closed;
  }
  get stopped(): boolean {
    return this.#target.scsi.stopped;
  }
  get writeProtected(): boolean {
    return this.#target.scsi.writeProtected;
  }
  get writeCacheEnabled(): boolean {
    return this.#target.scsi.writeCacheEnabled;
  }

  withRange<T>(lba: number, blocks: number, exclusive: boolean, work: () => Promise<T>): Promise<T> {
    this.calls.push(`lock ${lba}+${blocks}${exclusive ? " exclusive" : ""}`);
    return this.#target.scsi.withRange(lba, blocks, exclusive, work);
  }

  readBlocks(lba: number, blocks: number, target: DataSegments, targetStartBytes: number): IoResult {
    this.calls.push(`read ${lba}+${blocks}`);
    return Promise.resolve().then(() => this.#target.scsi.readBlocks(lba, blocks, target, targetStartBytes));
  }

  writeBlocks(lba: number, blocks: number, source: DataSegments, sourceStartBytes: number, durable: boolean): IoResult {
    this.calls.push(`write ${lba}+${blocks}${durable ? " durable" : ""}`);
    if (this.failWritesAt !== undefined) {
      return Promise.reject(new BackstoreError("write", this.failWritesAt * this.blockSizeBytes, "proxy write failed"));
    }
    return Promise.resolve().then(() => this.#target.scsi.writeBlocks(lba, blocks, source, sourceStartBytes, durable));
  }
}

describe("EXTENDED COPY with a peer reached through a CopyUnit", () => {
  function withProxyPeer(): { a: SimDevice; b: SimDevice; proxy: ProxyUnit } {
    const registry = new DeviceRegistry();
    const a = open({ scsi: { registry } });
    // B is registered elsewhere: A finds it only as the proxy.
    const b = open({ scsi: { registry: new DeviceRegistry() } });
    const proxy = new ProxyUnit(b);
    registry.register(proxy.naaKey, proxy);
    expect(registry.find(b.scsi.naaKey)).toBe(proxy);
    return { a, b, proxy };
  }

  test("pushes to and pulls from the proxy, each chunk under the peer's lock", async () => {
    const { a, b, proxy } = withProxyPeer();
    await pushAndPull(a, b, 11);
    // B's write cache is off (SimDevice default), so the write to it is durable.
    expect(proxy.calls).toEqual(["lock 50+8", "write 50+8 durable", "lock 7+4", "read 7+4"]);
  });

  test("a rejected peer write becomes sense on the receiving unit", async () => {
    const { a, b, proxy } = withProxyPeer();
    proxy.failWritesAt = 60;
    const completion = await copy(a, [a.scsi.naa, b.scsi.naa], [{ source: 0, destination: 1, blocks: 4, sourceLba: 0, destinationLba: 60 }]);
    expectCheck(completion, WRITE_ERROR, { information: 60 });
  });

  test("a stopped peer is not reachable", async () => {
    const { a, b } = withProxyPeer();
    b.scsi.stopped = true;
    const completion = await copy(a, [a.scsi.naa, b.scsi.naa], [{ source: 0, destination: 1, blocks: 1, sourceLba: 0, destinationLba: 0 }]);
    expectCheck(completion, COPY_TARGET_DEVICE_NOT_REACHABLE);
  });
});

describe("RECEIVE COPY RESULTS (OPERATING PARAMETERS)", () => {
  test("reports the limits EXTENDED COPY enforces and the descriptor types it implements", async () => {
    const a = open();
    const completion = await a.submit(cdbs.receiveCopyOperatingParameters(256), { dataInBytes: 256 });
    expectGood(completion);
    const data = completion.dataIn;
    expect(data.length).toBe(46);
    expect(u32At(data, 0)).toBe(42);
    expect(data[4]! & 0x01).toBe(1);
    expect(u16At(data, 8)).toBe(8);
    expect(u16At(data, 10)).toBe(8);
    expect(u32At(data, 12)).toBe(1024);
    expect(u32At(data, 16)).toBe(32 * 1024 * 1024);
    expect(data[37]).toBe(9);
    expect(data[43]).toBe(2);
    expect([data[44], data[45]]).toEqual([0x02, 0xe4]);
  });

  test("an allocation length shorter than the data cuts it", async () => {
    const a = open();
    const completion = await a.submit(cdbs.receiveCopyOperatingParameters(10), { dataInBytes: 256 });
    expectGood(completion);
    expect(completion.dataIn.length).toBe(10);
    expect(completion.dataInBuffer.subarray(10).every((byte) => byte === 0)).toBe(true);
  });
});
