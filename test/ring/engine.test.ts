import { afterEach, describe, expect, test } from "bun:test";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../../backstores/types.ts";
import { SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD, type ScsiCommand } from "../../src/ring/command.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";
import { RingDriver } from "../../src/ring/driver.ts";
import { RingEngine, type CommandExecutor } from "../../src/ring/engine.ts";
import * as uapi from "../../src/ring/uapi.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../../src/scsi/device.ts";
import { KernelSim, SIM_STALE_BYTE } from "../../src/sim/kernel-sim.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function simDevice(options: ConstructorParameters<typeof SimDevice>[0] = {}): SimDevice {
  const device = new SimDevice(options);
  cleanups.push(() => device.close());
  return device;
}

/** A RAM disk whose reads and writes finish after `delayFor(offset)` milliseconds. */
class SlowBackstore extends RamBackstore {
  constructor(
    sizeBytes: number,
    readonly delayFor: (offsetBytes: number) => number,
  ) {
    super(sizeBytes);
  }
  override read(offsetBytes: number, lengthBytes: number, target: DataSegments, start: number): Promise<void> {
    return Bun.sleep(this.delayFor(offsetBytes)).then(() => super.read(offsetBytes, lengthBytes, target, start));
  }
  override write(offsetBytes: number, lengthBytes: number, source: DataSegments, start: number): Promise<void> {
    return Bun.sleep(this.delayFor(offsetBytes)).then(() => super.write(offsetBytes, lengthBytes, source, start));
  }
}

describe("ring walking", () => {
  test("keeps data intact across many wraps of a small ring, passing PAD entries", async () => {
    // A 4 KiB ring holds ~30 entries, so 600 commands wrap it about 20 times.
    const device = simDevice({ sim: { ringAreaBytes: 4096, dataBlockCount: 64 } });
    for (let round = 0; round < 300; round += 1) {
      const data = cdbs.patternBytes(512 * (1 + (round % 7)), round + 1);
      const lba = (round * 13) % 1000;
      // A 6-byte CDB makes a 120-byte entry, so entries stop lining up with the ring's end.
      expect((await device.submit(cdbs.TEST_UNIT_READY)).status).toBe(SAM_STAT_GOOD);
      expect((await device.submit(cdbs.write10(lba, data.byteLength / 512), { dataOut: data })).status).toBe(SAM_STAT_GOOD);
      const read = await device.submit(cdbs.read16(lba, data.byteLength / 512), { dataInBytes: data.byteLength });
      expect(read.status).toBe(SAM_STAT_GOOD);
      expect(read.dataIn).toEqual(data);
    }
    expect(device.engine.counters.padEntries).toBeGreaterThan(5);
    expect(device.sim.broken).toBe(false);
    expect(device.sim.tailOffset).toBe(device.sim.headOffset);
  });

  test("serves several entries posted before one wake-up and rings the doorbell once for them", async () => {
    const device = simDevice();
    const pending = Array.from({ length: 40 }, (_, index) => device.submit(cdbs.read10(index * 8, 8), { dataInBytes: 4096 }));
    const completions = await Promise.all(pending);
    expect(completions.every((completion) => completion.status === SAM_STAT_GOOD)).toBe(true);
    expect(device.sim.doorbellCount).toBe(1);
    expect(device.engine.counters.batches).toBe(1);
  });

  test("queues commands the kernel could not post for lack of ring space and serves them later", async () => {
    const device = simDevice({ sim: { ringAreaBytes: 2048, dataBlockCount: 8 } });
    const pending = Array.from({ length: 64 }, (_, index) => device.submit(cdbs.read10(index, 8), { dataInBytes: 4096 }));
    expect(device.sim.queuedCount).toBeGreaterThan(0);
    const completions = await Promise.all(pending);
    expect(completions.filter((completion) => completion.status === SAM_STAT_GOOD).length).toBe(64);
  });
});

describe("completion order", () => {
  test("completes a fast command before a slow one under CAP_OOOC (tail steal)", async () => {
    const backstore = new SlowBackstore(64 * 1024 * 1024, (offset) => (offset === 0 ? 30 : 0));
    const device = simDevice({ backstore });
    const order: number[] = [];
    const slow = device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 }).then((completion) => (order.push(0), completion));
    const fast = device.submit(cdbs.read10(8, 8), { dataInBytes: 4096 }).then((completion) => (order.push(1), completion));
    const [slowCompletion, fastCompletion] = await Promise.all([slow, fast]);
    expect(order).toEqual([1, 0]);
    expect(slowCompletion.status).toBe(SAM_STAT_GOOD);
    expect(fastCompletion.status).toBe(SAM_STAT_GOOD);
    expect(device.sim.broken).toBe(false);
  });

  test("holds completions back in ring order when the kernel lacks CAP_OOOC", async () => {
    const backstore = new SlowBackstore(64 * 1024 * 1024, (offset) => (offset === 0 ? 30 : 0));
    const device = simDevice({ backstore, sim: { mailboxFlags: uapi.TCMU_MAILBOX_FLAG_CAP_READ_LEN } });
    expect(device.engine.outOfOrderCompletion).toBe(false);
    const order: number[] = [];
    const first = device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 }).then(() => order.push(0));
    const second = device.submit(cdbs.read10(8, 8), { dataInBytes: 4096 }).then(() => order.push(1));
    await Promise.all([first, second]);
    expect(order).toEqual([0, 1]);
    expect(device.sim.broken).toBe(false);
  });

  test("returns each command's own data when completions steal each other's slots", async () => {
    const backstore = new SlowBackstore(64 * 1024 * 1024, (offset) => (offset / 4096) % 5);
    const device = simDevice({ backstore });
    const blocks = 40;
    await Promise.all(
      Array.from({ length: blocks }, (_, index) =>
        device.submit(cdbs.write10(index * 8, 8), { dataOut: cdbs.patternBytes(4096, index + 1) }),
      ),
    );
    const reads = await Promise.all(
      Array.from({ length: blocks }, (_, index) => device.submit(cdbs.read10(index * 8, 8), { dataInBytes: 4096 })),
    );
    reads.forEach((read, index) => expect(read.dataIn).toEqual(cdbs.patternBytes(4096, index + 1)));
    expect(device.sim.broken).toBe(false);
  });
});

/** An executor that echoes Data-Out into the bidi Data-In, to see both iovec lists. */
class EchoExecutor implements CommandExecutor {
  seen: { out: number; in: number }[] = [];
  execute(command: ScsiCommand): void {
    const out = new Uint8Array(command.data.totalBytes);
    command.data.copyTo(out);
    this.seen.push({ out: command.data.totalBytes, in: command.bidiData.totalBytes });
    for (let index = 0; index < out.length; index += 1) out[index] = out[index]! ^ 0xff;
    command.bidiData.copyFrom(out);
    command.dataInBytes = Math.min(out.length, command.bidiData.totalBytes);
  }
  failInternally(command: ScsiCommand): void {
    command.status = SAM_STAT_CHECK_CONDITION;
  }
}

function engineOver(sim: KernelSim, executor: CommandExecutor): RingEngine {
  const engine = new RingEngine(sim.ring, sim.doorbell, executor);
  sim.onInterrupt = new RingDriver(engine).kick;
  cleanups.push(() => sim.close());
  return engine;
}

describe("entry contents", () => {
  test("splits bidirectional iovecs into Data-Out then Data-In", async () => {
    const sim = new KernelSim();
    const executor = new EchoExecutor();
    engineOver(sim, executor);
    const out = cdbs.patternBytes(12288, 3);
    const completion = await sim.submit(new Uint8Array([0x53, 0, 0, 0, 0, 0, 0, 0, 24, 0]), { dataOut: out, dataInBytes: 12288 });
    expect(executor.seen).toEqual([{ out: 12288, in: 12288 }]);
    expect(completion.dataIn).toEqual(out.map((byte) => byte ^ 0xff));
  });

  test("marks commands named by a TMR entry as aborted and still completes them", async () => {
    const backstore = new SlowBackstore(64 * 1024 * 1024, () => 20);
    const device = simDevice({ backstore });
    const slow = device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
    await Bun.sleep(1);
    expect(device.sim.postTmr(uapi.TCMU_TMR_ABORT_TASK, [1])).toBe(true);
    await Bun.sleep(1);
    expect(device.engine.counters.tmrEntries).toBe(1);
    expect(device.engine.counters.abortedCommands).toBe(1);
    expect((await slow).cmdId).toBe(1);
    const after = await device.submit(cdbs.TEST_UNIT_READY);
    expect(after.status).toBe(SAM_STAT_GOOD);
    expect(device.sim.broken).toBe(false);
  });

  test("sets UNKNOWN_OP on an entry type it does not know and keeps serving", async () => {
    const device = simDevice();
    const at = device.sim.postUnknownEntry(5, 64);
    await Bun.sleep(1);
    expect(device.sim.uflagsAt(at) & uapi.TCMU_UFLAG_UNKNOWN_OP).toBe(uapi.TCMU_UFLAG_UNKNOWN_OP);
    expect(device.engine.counters.unknownEntries).toBe(1);
    expect((await device.submit(cdbs.TEST_UNIT_READY)).status).toBe(SAM_STAT_GOOD);
    expect(device.sim.broken).toBe(false);
  });

  test("answers an unknown SCSI opcode with ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE", async () => {
    const device = simDevice();
    const completion = await device.submit(new Uint8Array([0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(completion.status).toBe(SAM_STAT_CHECK_CONDITION);
    expect(cdbs.senseTriple(completion.sense)).toEqual([0x05, 0x20, 0x00]);
  });
});

describe("malformed entries", () => {
  const hardwareError: [number, number, number] = [0x04, 0x44, 0x00];

  test("fails a command whose iovec points outside the map, touching nothing", async () => {
    const device = simDevice();
    const before = device.sim.ring.memory.slice(0, device.sim.dataAreaOffset);
    const completion = await device.sim.submitRaw(cdbs.read10(0, 8), { dataInBytes: 4096 }, (entry, view) => {
      view.setBigUint64(entry + uapi.REQ_IOV_OFFSET, BigInt(device.sim.mapBytes - 100), true);
    });
    expect(completion.status).toBe(SAM_STAT_CHECK_CONDITION);
    expect(cdbs.senseTriple(completion.sense)).toEqual(hardwareError);
    expect(device.engine.counters.malformedEntries).toBe(1);
    expect(device.sim.ring.memory.slice(0, 128)).toEqual(patchTail(before.slice(0, 128), device.sim.tailOffset));
    expect((await device.submit(cdbs.TEST_UNIT_READY)).status).toBe(SAM_STAT_GOOD);
  });

  test("fails a command whose iovec points into the command ring", async () => {
    const device = simDevice();
    const completion = await device.sim.submitRaw(cdbs.write10(0, 8), { dataOut: new Uint8Array(4096) }, (entry, view) => {
      view.setBigUint64(entry + uapi.REQ_IOV_OFFSET, 256n, true);
    });
    expect(cdbs.senseTriple(completion.sense)).toEqual(hardwareError);
  });

  test("fails a command whose iovec base is beyond 2^53", async () => {
    const device = simDevice();
    const completion = await device.sim.submitRaw(cdbs.read10(0, 8), { dataInBytes: 4096 }, (entry, view) => {
      view.setBigUint64(entry + uapi.REQ_IOV_OFFSET, 0xffff_ffff_ffff_f000n, true);
    });
    expect(cdbs.senseTriple(completion.sense)).toEqual(hardwareError);
  });

  test("fails a command whose cdb_off points outside the map or the ring", async () => {
    const device = simDevice();
    for (const cdbOffset of [BigInt(device.sim.mapBytes + 4096), 2n ** 62n, BigInt(device.sim.dataAreaOffset + 8), 0n]) {
      const completion = await device.sim.submitRaw(cdbs.TEST_UNIT_READY, {}, (entry, view) => {
        view.setBigUint64(entry + uapi.REQ_CDB_OFF_OFFSET, cdbOffset, true);
      });
      expect(cdbs.senseTriple(completion.sense)).toEqual(hardwareError);
    }
    expect((await device.submit(cdbs.TEST_UNIT_READY)).status).toBe(SAM_STAT_GOOD);
  });

  test("fails a command claiming more iovecs than its entry holds", async () => {
    const device = simDevice();
    const completion = await device.sim.submitRaw(cdbs.read10(0, 8), { dataInBytes: 4096 }, (entry, view) => {
      view.setUint32(entry + uapi.REQ_IOV_CNT_OFFSET, 1_000_000, true);
    });
    expect(cdbs.senseTriple(completion.sense)).toEqual(hardwareError);
  });

  test("stops a device whose entry length is corrupt instead of walking off the ring", async () => {
    const device = simDevice();
    void device.sim.submitRaw(cdbs.TEST_UNIT_READY, {}, (entry, view) => {
      view.setUint32(entry, uapi.tcmuHdrLenOp(1 << 20, uapi.TCMU_OP_CMD), true);
    });
    await Bun.sleep(5);
    expect(device.engine.broken).toBe(true);
    expect(device.engine.processRing()).toBe(0);
  });
});

/** The mailbox after a run differs from before only in cmd_head and cmd_tail. */
function patchTail<Bytes extends Uint8Array>(mailbox: Bytes, tail: number): Bytes {
  const view = new DataView(mailbox.buffer, mailbox.byteOffset);
  view.setUint32(uapi.MAILBOX_CMD_HEAD_OFFSET, tail, true);
  view.setUint32(uapi.MAILBOX_CMD_TAIL_OFFSET, tail, true);
  return mailbox;
}

describe("Data-In replies", () => {
  test("never lets stale data-area bytes past a reply shorter than its buffer (READ_LEN)", async () => {
    const device = simDevice();
    const completion = await device.submit(cdbs.inquiry(4096), { dataInBytes: 4096 });
    expect(completion.status).toBe(SAM_STAT_GOOD);
    expect(completion.uflags & uapi.TCMU_UFLAG_READ_LEN).toBe(uapi.TCMU_UFLAG_READ_LEN);
    // Standard INQUIRY data is ADDITIONAL LENGTH (byte 4) + 5 bytes long.
    const replyBytes = completion.dataIn[4]! + 5;
    expect(replyBytes).toBeLessThan(4096);
    expect(completion.dataIn.byteLength).toBe(replyBytes);
    expect(completion.dataInBuffer.subarray(replyBytes).every((byte) => byte === 0)).toBe(true);
    expect(completion.dataInBuffer.includes(SIM_STALE_BYTE)).toBe(false);
  });

  test("zeroes the unused buffer when the kernel has no CAP_READ_LEN", async () => {
    const device = simDevice({ sim: { mailboxFlags: uapi.TCMU_MAILBOX_FLAG_CAP_OOOC } });
    const completion = await device.submit(cdbs.inquiry(4096), { dataInBytes: 4096 });
    expect(completion.uflags & uapi.TCMU_UFLAG_READ_LEN).toBe(0);
    expect(completion.dataIn.byteLength).toBe(4096);
    expect(completion.dataIn.subarray(completion.dataIn[4]! + 5).every((byte) => byte === 0)).toBe(true);
  });

  test("zeroes a read's buffer when the command fails", async () => {
    const device = simDevice({ sizeBytes: 1024 * 1024 });
    const completion = await device.submit(cdbs.read10(4096, 8), { dataInBytes: 4096 });
    expect(completion.status).toBe(SAM_STAT_CHECK_CONDITION);
    expect(completion.dataIn.byteLength).toBe(0);
  });
});

describe("restart", () => {
  test("serves commands a dead predecessor left between cmd_tail and cmd_head", async () => {
    const sim = new KernelSim();
    cleanups.push(() => sim.close());
    // Nobody listens yet: the commands sit in the ring, as after a handler crash.
    const data = cdbs.patternBytes(4096, 9);
    const backstore: Backstore = new RamBackstore(1024 * 1024);
    const pending = [sim.submit(cdbs.write10(0, 8), { dataOut: data }), sim.submit(cdbs.read10(0, 8), { dataInBytes: 4096 })];
    const scsi = new ScsiDevice(backstore, {
      name: "restart",
      blockSizeBytes: 512,
      sizeBytes: backstore.sizeBytes,
      maxTransferBlocks: 128,
      writeCacheEnabled: false,
      identity: DEFAULT_IDENTITY,
    });
    const engine = new RingEngine(sim.ring, sim.doorbell, scsi);
    sim.onInterrupt = new RingDriver(engine).kick;
    engine.processRing();
    const [write, read] = await Promise.all(pending);
    expect(write!.status).toBe(SAM_STAT_GOOD);
    expect(read!.dataIn).toEqual(data);
  });
});

describe("bounded queues", () => {
  test("whenIdle takes at most IDLE_WAITERS_MAX callers at once; all of them wake when the ring drains", async () => {
    const { IDLE_WAITERS_MAX } = await import("../../src/ring/engine.ts");
    const device = simDevice({ backstore: new SlowBackstore(1024 * 1024, () => 30), sizeBytes: 1024 * 1024 });
    const read = device.submit(cdbs.read10(0, 8), { dataInBytes: 4096 });
    for (let wait = 0; wait < 50 && device.engine.inFlightCount === 0; wait += 1) await Bun.sleep(1);
    expect(device.engine.inFlightCount).toBe(1);
    const waiters = Array.from({ length: IDLE_WAITERS_MAX }, () => device.engine.whenIdle());
    expect(() => device.engine.whenIdle()).toThrow(`more than ${IDLE_WAITERS_MAX} callers`);
    expect((await read).status).toBe(SAM_STAT_GOOD);
    await Promise.all(waiters);
    expect(device.engine.inFlightCount).toBe(0);
  });
});
