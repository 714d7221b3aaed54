import { expect, test } from "bun:test";
import * as libc from "../../src/libc/libc.ts";
import { Waiter } from "../../src/uio/waiter.ts";

test("the wait worker wakes the main thread once per interrupt and stops on request", async () => {
  // An eventfd stands in for /dev/uioN: readable after a write, 8-byte reads.
  const fd = libc.eventfd(0, 0);
  let wakes = 0;
  let wake: () => void = () => {};
  const waiter = new Waiter({
    fd,
    readBytes: 8,
    onWake: () => {
      wakes += 1;
      wake();
    },
    onGone: () => {},
  });
  for (let round = 1; round <= 3; round += 1) {
    const woken = new Promise<void>((resolve) => (wake = resolve));
    libc.write(fd, new BigUint64Array([1n]), 8);
    await woken;
    expect(wakes).toBe(round);
  }
  await waiter.stop();
  libc.close(fd);
});

test("the wait worker reports a device whose reads fail as gone", async () => {
  // A read of 4 bytes from an eventfd fails with EINVAL, as a read of a removed UIO device fails.
  const fd = libc.eventfd(0, 0);
  const gone = new Promise<void>((resolve) => {
    const waiter = new Waiter({ fd, readBytes: 4, onWake: () => {}, onGone: () => void waiter.stop().then(resolve) });
  });
  libc.write(fd, new BigUint64Array([1n]), 8);
  await gone;
  libc.close(fd);
});
