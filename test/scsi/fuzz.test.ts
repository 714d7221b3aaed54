// Fuzzing the SCSI unit: a million random and mutated CDBs with random parameter lists, most
// straight through ScsiDevice.execute with one reused ScsiCommand over a scratch mapping (the
// way the engine builds commands), and a share through the whole simulated ring. Every reply
// must be GOOD or CHECK CONDITION with well-formed sense of a reason we name; every accepted
// write must have done exactly what the reference model says (a shadow copy of each disk,
// compared whole at intervals); READ must return the shadow's bytes. A failure prints the seed;
// SCSI_FUZZ_SEED=<seed> reproduces it, SCSI_FUZZ_COMMANDS / SCSI_FUZZ_RING_COMMANDS resize it.
import { ptr, toArrayBuffer } from "bun:ffi";
import { afterAll, expect, test } from "bun:test";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import { mmapAnonymous, munmap } from "../../src/libc/libc.ts";
import { NO_DATA_IN, SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD, ScsiCommand, scsiCommandSize } from "../../src/ring/command.ts";
import { DataSegments } from "../../src/ring/data-segments.ts";
import { DeviceRegistry } from "../../src/scsi/device-registry.ts";
import { DEFAULT_IDENTITY, ScsiDevice, type ScsiDeviceConfig } from "../../src/scsi/device.ts";
import { CAPACITY_DATA_HAS_CHANGED, SENSE_REASONS } from "../../src/scsi/sense.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import { BLOCK_BYTES, DATA_IN_OPCODES, FuzzGenerator, type FuzzCommand, type FuzzDisk, type FuzzState } from "./fuzz-generator.ts";
import { applyAccepted, readRange } from "./fuzz-model.ts";
import { Random } from "./fuzz-random.ts";

const SEED = Number(process.env.SCSI_FUZZ_SEED ?? 0x5c5105);
const DIRECT_COMMANDS = Number(process.env.SCSI_FUZZ_COMMANDS ?? 1_000_000);
const RING_COMMANDS = Number(process.env.SCSI_FUZZ_RING_COMMANDS ?? 100_000);
const DISK_BYTES = 2 * 1024 * 1024;
const MAX_TRANSFER_BLOCKS = 64;
/** Whole-disk comparisons with the shadow, every this many commands. */
const COMPARE_EVERY_COMMANDS = Number(process.env.SCSI_FUZZ_COMPARE_EVERY ?? 4096);
/** A command that has not finished after this long is a hang. */
const HANG_MS = 10_000;

const KNOWN_SENSE = new Set(SENSE_REASONS.map((reason) => (reason.key << 16) | (reason.asc << 8) | reason.ascq));

const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function config(name: string, serial: string, registry: DeviceRegistry): ScsiDeviceConfig {
  return {
    name,
    blockSizeBytes: BLOCK_BYTES,
    sizeBytes: DISK_BYTES,
    maxTransferBlocks: MAX_TRANSFER_BLOCKS,
    writeCacheEnabled: false,
    identity: { ...DEFAULT_IDENTITY, unitSerial: serial },
    registry,
  };
}

function fuzzDisk(device: ScsiDevice): FuzzDisk {
  return { shadow: new Uint8Array(DISK_BYTES), naa: device.naa, naaKey: device.naaKey };
}

function stateOf(device: ScsiDevice): FuzzState {
  return {
    capacityBlocks: device.capacityBlocks,
    maxTransferBlocks: MAX_TRANSFER_BLOCKS,
    writeCacheEnabled: device.writeCacheEnabled,
    descriptorSense: device.descriptorSense,
  };
}

/** Checks a reply; returns a description of what is wrong, or undefined. */
function replyProblem(status: number, sense: Uint8Array, descriptorSense: boolean): string | undefined {
  if (status === SAM_STAT_GOOD) return undefined;
  if (status !== SAM_STAT_CHECK_CONDITION) return `status ${status}`;
  const responseCode = sense[0]! & 0x7f;
  let key: number;
  let asc: number;
  let ascq: number;
  if (responseCode === 0x70) {
    if (sense[7] !== 10) return `fixed sense with additional length ${sense[7]}`;
    [key, asc, ascq] = [sense[2]! & 0x0f, sense[12]!, sense[13]!];
  } else if (responseCode === 0x72) {
    const additional = sense[7]!;
    let at = 8;
    while (at < 8 + additional) at += 2 + sense[at + 1]!;
    if (at !== 8 + additional || at > sense.length) return `descriptor sense lengths do not add up (${additional})`;
    [key, asc, ascq] = [sense[1]! & 0x0f, sense[2]!, sense[3]!];
  } else {
    return `response code 0x${responseCode.toString(16)}`;
  }
  if ((responseCode === 0x72) !== descriptorSense) return "sense format does not follow D_SENSE";
  if (key === 0) return "CHECK CONDITION with sense key NO SENSE";
  if (!KNOWN_SENSE.has((key << 16) | (asc << 8) | ascq)) return `unnamed sense ${key}/${asc.toString(16)}/${ascq.toString(16)}`;
  return undefined;
}

function describe(command: FuzzCommand): string {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
  const dataOut = command.dataOut === undefined ? "none" : `${command.dataOut.length} bytes ${hex(command.dataOut.subarray(0, 48))}`;
  return `cdb ${hex(command.cdb)}, data-out ${dataOut}, data-in ${command.dataInBytes}`;
}

/** The error a failed run throws: where, the seed that reproduces it, and the command. */
function failure(path: string, index: number, seed: number, error: unknown, command: FuzzCommand | undefined): Error {
  const reproduce = `SCSI_FUZZ_SEED=${SEED} bun test test/scsi/fuzz.test.ts`;
  const what = command === undefined ? "" : describe(command);
  return new Error(`SCSI fuzz (${path}) failed at command ${index}, seed ${seed} (${reproduce}): ${String(error)}\n  ${what}`);
}

/** Reads the whole disk through the backstore and compares it with the shadow. */
function diskMatches(device: ScsiDevice, disk: FuzzDisk, scratch: Uint8Array): boolean {
  const segments = new DataSegments(scratch, ptr(scratch), 1);
  segments.push(0, DISK_BYTES);
  const result = device.backstore.read(0, DISK_BYTES, segments, 0);
  if (result !== undefined) throw new Error("the RAM store is synchronous");
  if (Buffer.compare(scratch, disk.shadow) === 0) return true;
  const first = scratch.findIndex((byte, at) => byte !== disk.shadow[at]);
  const lba = Math.floor(first / BLOCK_BYTES);
  console.error(`first difference at byte ${first} (LBA ${lba}): disk ${scratch[first]}, shadow ${disk.shadow[first]}`);
  return false;
}

/** One ScsiCommand over a scratch mapping, filled like the engine fills a slot. */
class DirectPath {
  readonly #mapBytes = 512 * 1024;
  readonly #address = mmapAnonymous(this.#mapBytes);
  readonly #memory = new Uint8Array(toArrayBuffer(this.#address, 0, this.#mapBytes));
  readonly command = new ScsiCommand(0, this.#memory, this.#address);
  readonly #random: Random;

  constructor(random: Random) {
    this.#random = random;
    cleanups.push(() => munmap(this.#address, this.#mapBytes));
  }

  /** Loads the command: CDB, then Data-Out or Data-In split into up to 3 segments with gaps. */
  load(fuzz: FuzzCommand): void {
    const command = this.command;
    command.reset();
    command.cdb.fill(0, 0, 16);
    command.cdb.set(fuzz.cdb);
    command.cdbLength = scsiCommandSize(fuzz.cdb);
    const bytes = fuzz.dataOut?.length ?? fuzz.dataInBytes;
    let at = 4096 + this.#random.below(64);
    let done = 0;
    const pieces = bytes === 0 ? 0 : 1 + this.#random.below(3);
    for (let piece = 0; piece < pieces; piece += 1) {
      const length = piece === pieces - 1 ? bytes - done : this.#random.below(bytes - done + 1);
      if (fuzz.dataOut !== undefined) this.#memory.set(fuzz.dataOut.subarray(done, done + length), at);
      else this.#memory.fill(0xa5, at, at + length);
      command.data.push(at, length);
      at += length + 16;
      done += length;
    }
  }

  /** The engine's completion: Data-In bytes the reply filled (the rest it zeroes). */
  dataIn(): Uint8Array {
    const command = this.command;
    if (command.dataInBytes === NO_DATA_IN) return new Uint8Array(0);
    const bytes = new Uint8Array(command.dataInBytes);
    command.dataIn.copyTo(bytes);
    return bytes;
  }
}

test(`fuzz: ${DIRECT_COMMANDS} CDBs straight through ScsiDevice.execute (seed ${SEED})`, async () => {
  const registry = new DeviceRegistry();
  const storeA = new RamBackstore(DISK_BYTES);
  const storeB = new RamBackstore(DISK_BYTES);
  const deviceA = new ScsiDevice(storeA, config("fuzz-a", "a1a1a1a1-0000-4000-8000-000000000001", registry));
  const deviceB = new ScsiDevice(storeB, config("fuzz-b", "b2b2b2b2-0000-4000-8000-000000000002", registry));
  cleanups.push(() => storeA.close(), () => storeB.close(), () => deviceA.close(), () => deviceB.close());
  const disks = [fuzzDisk(deviceA), fuzzDisk(deviceB)];
  const random = new Random(SEED);
  const generator = new FuzzGenerator(random, disks);
  const path = new DirectPath(random);
  const scratch = new Uint8Array(DISK_BYTES);
  // One watchdog for the run: a command still pending HANG_MS after it started is a hang.
  let stalled: ((error: Error) => void) | undefined;
  const watchdog = new Promise<never>((_, reject) => (stalled = reject));
  watchdog.catch(() => {});
  let pendingSince: number | undefined;
  const watchdogTimer = setInterval(() => {
    if (pendingSince !== undefined && performance.now() - pendingSince > HANG_MS) stalled!(new Error(`no completion after ${HANG_MS} ms`));
  }, 1000);
  cleanups.push(() => clearInterval(watchdogTimer));
  let accepted = 0;
  let asynchronous = 0;
  const started = performance.now();
  let index = 0;
  let current: FuzzCommand | undefined;
  try {
    for (; index < DIRECT_COMMANDS; index += 1) {
      if (index % 5003 === 0) deviceA.raiseUnitAttention(CAPACITY_DATA_HAS_CHANGED);
      const fuzz = generator.next(stateOf(deviceA));
      current = fuzz;
      path.load(fuzz);
      const descriptorSense = deviceA.descriptorSense;
      const pending = deviceA.execute(path.command);
      if (pending !== undefined) {
        asynchronous += 1;
        pendingSince = performance.now();
        await Promise.race([pending, watchdog]);
        pendingSince = undefined;
      }
      const command = path.command;
      const problem = replyProblem(command.status, command.sense, descriptorSense);
      if (problem !== undefined) throw new Error(problem);
      if (command.dataInBytes !== NO_DATA_IN && command.dataInBytes > command.dataIn.totalBytes) {
        throw new Error("Data-In longer than its buffer");
      }
      if (command.status !== SAM_STAT_GOOD) {
        if (command.dataInBytes !== NO_DATA_IN) throw new Error("CHECK CONDITION with Data-In");
        continue;
      }
      accepted += 1;
      applyAccepted(fuzz, disks);
      const range = readRange(fuzz.cdb);
      if (range !== undefined && command.dataInBytes > 0) {
        const expected = disks[0]!.shadow.subarray(range.lba * BLOCK_BYTES, range.lba * BLOCK_BYTES + command.dataInBytes);
        if (Buffer.compare(path.dataIn(), expected) !== 0) throw new Error("READ returned bytes that differ from the shadow");
      }
      if (index % COMPARE_EVERY_COMMANDS === 0 && !disks.every((disk, at) => diskMatches(at === 0 ? deviceA : deviceB, disk, scratch))) {
        throw new Error("the disk differs from the shadow (a write outside its LBAs, or a lost write)");
      }
    }
    expect(disks.every((disk, at) => diskMatches(at === 0 ? deviceA : deviceB, disk, scratch))).toBe(true);
  } catch (error) {
    throw failure("direct", index, SEED, error, current);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `scsi fuzz (direct): ${DIRECT_COMMANDS} commands in ${seconds.toFixed(1)} s (${Math.round(DIRECT_COMMANDS / seconds)}/s), ` +
      `${accepted} GOOD, ${asynchronous} through a promise, seed ${SEED}`,
  );
  expect(accepted).toBeGreaterThan(DIRECT_COMMANDS / 10);
}, 120_000);

test(`fuzz: ${RING_COMMANDS} CDBs through the simulated ring (seed ${SEED + 1})`, async () => {
  const registry = new DeviceRegistry();
  const device = new SimDevice({
    sizeBytes: DISK_BYTES,
    sim: { ringAreaBytes: 32 * 1024, dataBlockCount: 64 },
    scsi: config("ring-a", "c3c3c3c3-0000-4000-8000-000000000003", registry),
  });
  const partnerStore = new RamBackstore(DISK_BYTES);
  const partner = new ScsiDevice(partnerStore, config("ring-b", "d4d4d4d4-0000-4000-8000-000000000004", registry));
  cleanups.push(async () => {
    device.scsi.close();
    partner.close();
    partnerStore.close();
    await device.close();
  });
  const disks = [fuzzDisk(device.scsi), fuzzDisk(partner)];
  const generator = new FuzzGenerator(new Random(SEED + 1), disks);
  const scratch = new Uint8Array(DISK_BYTES);
  let accepted = 0;
  const started = performance.now();
  let index = 0;
  let current: FuzzCommand | undefined;
  try {
    for (; index < RING_COMMANDS; index += 1) {
      const fuzz = generator.next(stateOf(device.scsi));
      current = fuzz;
      const descriptorSense = device.scsi.descriptorSense;
      // The simulator copies the CDB and Data-Out when it posts the entry.
      const buffer = fuzz.dataOut === undefined ? { dataInBytes: fuzz.dataInBytes } : { dataOut: fuzz.dataOut.slice() };
      const completion = await device.submit(fuzz.cdb.slice(), buffer);
      const problem = replyProblem(completion.status, completion.sense, descriptorSense);
      if (problem !== undefined) throw new Error(problem);
      if (completion.status !== SAM_STAT_GOOD) continue;
      // Data pages are reused without zeroing: what the reply did not fill must be zero.
      if (DATA_IN_OPCODES.has(fuzz.cdb[0]!) && completion.dataInBuffer.subarray(completion.dataIn.length).some((byte) => byte !== 0)) {
        throw new Error("stale data-area bytes reached the initiator");
      }
      accepted += 1;
      applyAccepted(fuzz, disks);
      const range = readRange(fuzz.cdb);
      if (range !== undefined) {
        // Zero blocks read nothing: the buffer comes back zeroed (READ_LEN 0).
        const lengthBytes = Math.min(range.blocks * BLOCK_BYTES, completion.dataIn.length);
        const expected = disks[0]!.shadow.subarray(range.lba * BLOCK_BYTES, range.lba * BLOCK_BYTES + lengthBytes);
        if (Buffer.compare(completion.dataIn.subarray(0, lengthBytes), expected) !== 0) {
          throw new Error("READ returned bytes that differ from the shadow");
        }
      }
      if (index % COMPARE_EVERY_COMMANDS === 0 && !diskMatches(device.scsi, disks[0]!, scratch)) {
        throw new Error("the disk differs from the shadow");
      }
    }
    expect(diskMatches(device.scsi, disks[0]!, scratch) && diskMatches(partner, disks[1]!, scratch)).toBe(true);
  } catch (error) {
    throw failure("ring", index, SEED + 1, error, current);
  }
  const seconds = (performance.now() - started) / 1000;
  const rate = Math.round(RING_COMMANDS / seconds);
  console.log(`scsi fuzz (ring): ${RING_COMMANDS} commands in ${seconds.toFixed(1)} s (${rate}/s), ${accepted} GOOD`);
  expect(accepted).toBeGreaterThan(RING_COMMANDS / 10);
}, 120_000);
