// 10^6 commands of random sizes through the engine over the simulated kernel, with a seeded
// executor that finishes some at once and the rest later in random order: no completion is
// lost (every submission settles, the ring drains, cmd_tail meets cmd_head) and none is
// duplicated or misdirected (each completion carries its own command's tag; a completion for
// an id the kernel did not post would turn the simulated ring BROKEN). cmd_ids are reused at
// once, as the kernel does, so a stale or doubled completion would land on a new command.
import { expect, test } from "bun:test";
import { NO_DATA_IN, SAM_STAT_CHECK_CONDITION, type ScsiCommand } from "../../src/ring/command.ts";
import { RingDriver } from "../../src/ring/driver.ts";
import { RingEngine, type CommandExecutor } from "../../src/ring/engine.ts";
import { KernelSim, SIM_DATA_BLOCK_BYTES, type Completion } from "../../src/sim/kernel-sim.ts";
import { Prng, tick } from "./scripted-backstore.ts";

const COMMANDS = 1_000_000;
const QUEUE_DEPTH = 128;
const DATA_BLOCKS = 1024;
/** Random transfers up to this size; small Data-In replies are gathered and checked. */
const TRANSFER_BYTES_MAX = 256 * 1024;
const GATHERED_BYTES_MAX = 4096;
/** Any 10-byte opcode: the executor, not the SCSI layer, answers it. */
const OPCODE = 0x28;

/** Tags each reply with the sequence number in its CDB: in Data-In, or in the sense buffer. */
class TaggingExecutor implements CommandExecutor {
  readonly #prng: Prng;
  readonly #later: { command: ScsiCommand; resolve: () => void }[] = [];
  executed = 0;

  constructor(prng: Prng) {
    this.#prng = prng;
  }

  execute(command: ScsiCommand): void | Promise<void> {
    this.executed += 1;
    const tag = new DataView(command.cdb.buffer, command.cdb.byteOffset).getUint32(2, false);
    if (command.dataIn.totalBytes >= 4 && command.cdb[1] === 0) {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, tag, false);
      command.dataIn.copyFrom(bytes);
      command.dataInBytes = command.dataIn.totalBytes;
    } else {
      command.status = SAM_STAT_CHECK_CONDITION;
      command.dataInBytes = NO_DATA_IN;
      new DataView(command.sense.buffer).setUint32(3, tag, false);
      command.senseLengthBytes = 18;
    }
    if (this.#prng.below(3) === 0) return;
    return new Promise((resolve) => this.#later.push({ command, resolve }));
  }

  failInternally(): void {
    throw new Error("no command here should fail internally");
  }

  /** Finishes a random share of the deferred commands, in random order. */
  release(): void {
    const count = Math.ceil(this.#later.length * (this.#prng.below(100) / 100));
    for (let done = 0; done < count; done += 1) {
      const index = this.#prng.below(this.#later.length);
      const last = this.#later.pop()!;
      const picked = index < this.#later.length ? this.#later[index]! : last;
      if (index < this.#later.length) this.#later[index] = last;
      picked.resolve();
    }
  }
}

test(`no completion is lost or duplicated across ${COMMANDS} random-size commands (seed 7)`, async () => {
  const prng = new Prng(7);
  // A 64 KiB ring wraps thousands of times; fewer slots than the queue depth keep it backed up.
  const sim = new KernelSim({ ringAreaBytes: 64 * 1024, dataBlockCount: DATA_BLOCKS });
  const executor = new TaggingExecutor(prng);
  const engine = new RingEngine(sim.ring, sim.doorbell, executor, { slotCount: 64 });
  const driver = new RingDriver(engine);
  sim.onInterrupt = driver.kick;
  const payload = new Uint8Array(TRANSFER_BYTES_MAX);
  let issued = 0;
  let completed = 0;
  let outstanding = 0;
  let mismatches = 0;

  const check = (tag: number, tagInSense: boolean) => (completion: Completion) => {
    const view = tagInSense ? new DataView(completion.sense.buffer, completion.sense.byteOffset) : new DataView(completion.dataIn.buffer, completion.dataIn.byteOffset);
    const expectedStatus = tagInSense ? SAM_STAT_CHECK_CONDITION : 0;
    if (completion.status !== expectedStatus || view.byteLength < (tagInSense ? 7 : 4) || view.getUint32(tagInSense ? 3 : 0, false) !== tag) mismatches += 1;
    completed += 1;
    outstanding -= 1;
  };

  const issue = (): void => {
    const tag = issued;
    const cdb = new Uint8Array(10);
    cdb[0] = OPCODE;
    new DataView(cdb.buffer).setUint32(2, tag, false);
    const kind = prng.below(4);
    const bytes = 1 + prng.below(kind === 0 ? GATHERED_BYTES_MAX : TRANSFER_BYTES_MAX);
    let submitted: Promise<Completion>;
    if (kind === 0) {
      submitted = sim.submit(cdb, { dataInBytes: Math.max(4, bytes) }); // small Data-In: tag in the data
    } else {
      cdb[1] = 1; // tag in the sense
      submitted = kind === 1 ? sim.submit(cdb, { dataInBytes: bytes, gatherDataIn: false }) : sim.submit(cdb, { dataOut: payload.subarray(0, kind === 2 ? bytes : 0) });
    }
    submitted.then(check(tag, kind !== 0), () => (mismatches += 1));
    issued += 1;
    outstanding += 1;
  };

  while (completed < COMMANDS) {
    while (issued < COMMANDS && outstanding < QUEUE_DEPTH) issue();
    await tick();
    executor.release();
    if (sim.broken) break;
  }
  for (let settle = 0; settle < 3; settle += 1) await tick();

  expect(sim.broken).toBe(false);
  expect(mismatches).toBe(0);
  expect(completed).toBe(COMMANDS);
  expect(executor.executed).toBe(COMMANDS);
  expect(engine.counters.commands).toBe(COMMANDS);
  expect(engine.inFlightCount).toBe(0);
  expect(sim.inFlightCount).toBe(0);
  expect(sim.tailOffset).toBe(sim.headOffset);
  expect(engine.counters.padEntries).toBeGreaterThan(COMMANDS / 1000);
  expect(engine.counters.throttled).toBeGreaterThan(0);
  sim.close();
  // Data blocks of 4 KiB: the largest command here takes 64 of them.
  expect(TRANSFER_BYTES_MAX / SIM_DATA_BLOCK_BYTES).toBeLessThanOrEqual(DATA_BLOCKS / 2);
}, 120_000);
