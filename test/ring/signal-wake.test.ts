import { expect, test } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import * as libc from "../../src/libc/libc.ts";
import { armSignalWake, disarmSignalWake, signalWakeCounters } from "../../src/ring/signal-wake.ts";
import { Waiter } from "../../src/uio/waiter.ts";

const { symbols } = dlopen("libc.so.6", { pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 } });

/** A pipe stands in for /dev/uioN: both send SIGIO to their owner under O_ASYNC. */
function pipe(): [readEnd: number, writeEnd: number] {
  const ends = new Int32Array(2);
  expect(symbols.pipe2(ends, libc.O_NONBLOCK)).toBe(0);
  return [ends[0]!, ends[1]!];
}

const BYTE = new Uint8Array(1);

test("SIGIO from an armed descriptor runs its callback on the event loop's thread, until disarmed", async () => {
  const [readEnd, writeEnd] = pipe();
  let calls = 0;
  let wake: () => void = () => {};
  expect(armSignalWake(readEnd, () => ((calls += 1), wake()))).toBe(true);
  const drain = new Uint8Array(64);
  for (let round = 1; round <= 3; round += 1) {
    const woken = new Promise<void>((resolve) => (wake = resolve));
    libc.write(writeEnd, BYTE, 1);
    await woken;
    libc.readNonBlocking(readEnd, drain, drain.byteLength);
    expect(calls).toBe(round);
  }
  disarmSignalWake(readEnd);
  const signals = signalWakeCounters.signals;
  libc.write(writeEnd, BYTE, 1);
  await Bun.sleep(20);
  expect(signalWakeCounters.signals).toBe(signals);
  expect(calls).toBe(3);
  libc.close(readEnd);
  libc.close(writeEnd);
});

test("a Waiter in signal mode wakes per interrupt with no thread, and stops cleanly", async () => {
  const [readEnd, writeEnd] = pipe();
  let wakes = 0;
  let wake: () => void = () => {};
  const waiter = new Waiter({ fd: readEnd, readBytes: 4, signal: true, onWake: () => ((wakes += 1), wake()), onGone: () => {} });
  expect(waiter.mode).toBe("signal");
  const woken = new Promise<void>((resolve) => (wake = resolve));
  libc.write(writeEnd, BYTE, 1);
  await woken;
  expect(wakes).toBe(1);
  await waiter.stop();
  libc.write(writeEnd, BYTE, 1);
  await Bun.sleep(20);
  expect(wakes).toBe(1);
  libc.close(readEnd);
  libc.close(writeEnd);
});

test("an eventfd (no fasync) gets the wait worker", async () => {
  const fd = libc.eventfd(0, 0);
  const waiter = new Waiter({ fd, readBytes: 8, onWake: () => {}, onGone: () => {} });
  expect(waiter.mode).toBe("thread");
  await waiter.stop();
  libc.close(fd);
});
