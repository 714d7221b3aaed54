// The slot pool's bookkeeping: slots are made only as the queue depth needs them, and the
// free → running → done → free cycle is enforced, so a bug that would reply twice, or reuse a
// live slot, throws instead of corrupting the ring.
import { expect, test } from "bun:test";
import { InFlightCommands } from "../../src/ring/in-flight.ts";

const memory = new Uint8Array(4096);

function pool(slotCount = 4, bytesMax = 1000) {
  const made: number[] = [];
  return { inFlight: new InFlightCommands(memory, 0, slotCount, bytesMax, (command) => made.push(command.slotIndex)), made };
}

test("slots are made on first need, reused after release, and never more than the slot count", () => {
  const { inFlight, made } = pool();
  const first = inFlight.take();
  inFlight.admit(first, 100);
  inFlight.markDone(first);
  inFlight.release(first);
  const again = inFlight.take();
  expect(again).toBe(first);
  expect(made).toEqual([0]);
  const others = [inFlight.take(), inFlight.take(), inFlight.take()];
  expect(made).toEqual([0, 1, 2, 3]);
  expect(inFlight.hasFreeSlot).toBe(false);
  expect(inFlight.count).toBe(4);
  for (const command of [again, ...others]) {
    inFlight.markDone(command);
    inFlight.release(command);
  }
  expect(inFlight.count).toBe(0);
});

test("in-flight bytes bound admission, but one command alone always runs", () => {
  const { inFlight } = pool(4, 1000);
  expect(inFlight.admits(5000)).toBe(true);
  const big = inFlight.take();
  inFlight.admit(big, 900);
  expect(inFlight.admits(100)).toBe(true);
  expect(inFlight.admits(101)).toBe(false);
  inFlight.markDone(big);
  inFlight.release(big);
  expect(inFlight.bytes).toBe(0);
});

test("a command completed twice, or released before it completed, throws", () => {
  const { inFlight } = pool();
  const command = inFlight.take();
  inFlight.admit(command, 10);
  expect(() => inFlight.release(command)).toThrow("released while running");
  inFlight.markDone(command);
  expect(() => inFlight.markDone(command)).toThrow("completed twice");
  inFlight.release(command);
  expect(() => inFlight.release(command)).toThrow("released while free");
});

test("a cmd_id posted while the same id is out is reported, and a TMR finds every command with it", () => {
  const { inFlight } = pool();
  const a = inFlight.take();
  a.cmdId = 7;
  expect(inFlight.admit(a, 0)).toBe(true);
  const b = inFlight.take();
  b.cmdId = 7;
  expect(inFlight.admit(b, 0)).toBe(false);
  const found: number[] = [];
  inFlight.forEachWithId(7, (command) => found.push(command.slotIndex));
  expect(found.sort()).toEqual([a.slotIndex, b.slotIndex].sort());
  inFlight.forEachWithId(8, () => found.push(-1));
  expect(found).not.toContain(-1);
});
