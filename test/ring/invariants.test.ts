// The ring engine's invariants, each tripped through the simulator by a deliberately broken
// party: an executor whose promise settles twice (a reply sent twice would complete a cmd_id the
// kernel already reused), a kernel that posts a cmd_id still in flight. The assertion must stop
// the engine before the ring carries a second reply, or name the kernel's bug.
import { afterEach, expect, test } from "bun:test";
import { SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD, type ScsiCommand } from "../../src/ring/command.ts";
import { RingEngine, type CommandExecutor, type RingLogger } from "../../src/ring/engine.ts";
import * as uapi from "../../src/ring/uapi.ts";
import { KernelSim } from "../../src/sim/kernel-sim.ts";
/** TEST UNIT READY: no data either way. */
const TEST_UNIT_READY = new Uint8Array(6);

const sims: KernelSim[] = [];
afterEach(() => {
  for (const sim of sims.splice(0)) sim.close();
});

class RecordingLogger implements RingLogger {
  readonly lines: string[] = [];
  warn(message: string): void {
    this.lines.push(message);
  }
  error(message: string): void {
    this.lines.push(message);
  }
}

/** Answers every command GOOD through `settle`, which the test breaks as it needs. */
class BrokenExecutor implements CommandExecutor {
  constructor(readonly settle: (command: ScsiCommand) => void | Promise<void>) {}
  execute(command: ScsiCommand): void | Promise<void> {
    command.status = SAM_STAT_GOOD;
    return this.settle(command);
  }
  failInternally(command: ScsiCommand): void {
    command.status = SAM_STAT_CHECK_CONDITION;
  }
}

function engineOver(executor: CommandExecutor, logger = new RecordingLogger()): { sim: KernelSim; engine: RingEngine; logger: RecordingLogger } {
  const sim = new KernelSim();
  sims.push(sim);
  const engine = new RingEngine(sim.ring, sim.doorbell, executor, { logger });
  return { sim, engine, logger };
}

test("an executor whose promise settles twice trips 'completed twice' before any reply reaches the ring", async () => {
  // A thenable that calls back twice: what a store resolving one request twice would do.
  const settlesTwice = { then: (resolve: () => void) => (resolve(), resolve()) } as unknown as Promise<void>;
  const { sim, engine } = engineOver(new BrokenExecutor(() => settlesTwice));
  let answered = false;
  void sim.submit(TEST_UNIT_READY, {}).then(() => (answered = true));
  expect(() => engine.processRing()).toThrow(/cmd_id \d+ \(slot 0\) completed twice/);
  // The batch stopped at the assertion: no reply was written, so the kernel cannot see one twice.
  // (A data-plane worker then releases the device, and the re-attach resets the ring with BUSY.)
  await Bun.sleep(5);
  expect(answered).toBe(false);
  expect(sim.broken).toBe(false);
  expect(engine.counters.commands).toBe(1);
});

test("an executor that fails a command and then settles it trips the same assertion", () => {
  const failsThenSettles = { then: (resolve: () => void, reject: (error: unknown) => void) => (reject(new Error("store fault")), resolve()) } as unknown as Promise<void>;
  const { sim, engine, logger } = engineOver(new BrokenExecutor(() => failsThenSettles));
  void sim.submit(TEST_UNIT_READY, {});
  expect(() => engine.processRing()).toThrow("completed twice");
  expect(logger.lines.join("\n")).toContain("store fault");
});

test("a cmd_id the kernel posts while the same id is in flight is reported, and a TMR for it reaches both commands", () => {
  const held: ScsiCommand[] = [];
  const { sim, engine, logger } = engineOver(new BrokenExecutor((command) => (held.push(command), new Promise<void>(() => {}))));
  void sim.submit(TEST_UNIT_READY, {});
  engine.processRing();
  const firstId = held[0]!.cmdId;
  void sim.submitRaw(TEST_UNIT_READY, {}, (entry, view) => view.setUint16(entry + uapi.HDR_CMD_ID_OFFSET, firstId, true));
  engine.processRing();
  expect(logger.lines).toContain(`cmd_id ${firstId} posted twice while in flight`);
  expect(held.map((command) => command.cmdId)).toEqual([firstId, firstId]);
  expect(sim.postTmr(uapi.TCMU_TMR_ABORT_TASK, [firstId])).toBe(true);
  engine.processRing();
  expect(held.every((command) => command.aborted)).toBe(true);
});
