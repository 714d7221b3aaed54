import { expect, test } from "bun:test";
import { PollWindow } from "../../src/ring/poll-window.ts";

test("polling starts only after a queue-depth-1 rhythm and sizes its window from the loads before a hit", () => {
  const poll = new PollWindow(1);
  for (let batch = 0; batch < 7; batch += 1) {
    poll.idle(1);
    expect(poll.windowLoads()).toBe(0);
  }
  poll.idle(1);
  const first = poll.windowLoads();
  expect(first).toBeGreaterThan(0); // the cap, at the initial rate
  for (let round = 0; round < 20; round += 1) poll.hit(100);
  expect(poll.windowLoads()).toBe(Math.min(first, 200));
  poll.idle(3); // a deeper batch breaks the rhythm
  expect(poll.windowLoads()).toBe(0);
  for (let batch = 0; batch < 8; batch += 1) poll.idle(1);
  poll.busy();
  expect(poll.windowLoads()).toBe(0);
  expect(new PollWindow(0).windowLoads()).toBe(0);
});

test("a window that catches nothing pauses polling and teaches the loads-per-ms rate", () => {
  const poll = new PollWindow(1);
  for (let batch = 0; batch < 8; batch += 1) poll.idle(1);
  const before = poll.windowLoads();
  poll.missed(before, 0.01); // the loop ran 100× faster than assumed
  for (let idle = 0; idle < 7; idle += 1) {
    poll.idle(1);
    expect(poll.windowLoads()).toBe(0);
  }
  poll.idle(1);
  expect(poll.windowLoads()).toBeGreaterThan(before * 10);
  expect(poll.misses).toBe(1);
});
