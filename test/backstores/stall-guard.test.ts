import { expect, test } from "bun:test";
import { INLINE_WRITE_BACKOFF_WRITES, INLINE_WRITE_STALL_MS, StallGuard } from "../../backstores/file/stall-guard.ts";

test("a buffered write that stalls sends the next writes async for a while, then inline again", () => {
  const guard = new StallGuard();
  let sampled = 0;
  for (let write = 0; write < 64; write += 1) {
    expect(guard.allowsInline()).toBe(true);
    if (guard.sampled()) sampled += 1;
  }
  expect(sampled).toBe(8);
  guard.record(4096, 1); // a copy
  expect(guard.allowsInline()).toBe(true);
  guard.record(4096, INLINE_WRITE_STALL_MS + 50); // throttled
  expect(guard.stalls).toBe(1);
  for (let write = 0; write < INLINE_WRITE_BACKOFF_WRITES; write += 1) expect(guard.allowsInline()).toBe(false);
  expect(guard.allowsInline()).toBe(true);
  // A big write may take longer before it counts as a stall.
  guard.record(1024 * 1024, INLINE_WRITE_STALL_MS + 5);
  expect(guard.stalls).toBe(1);
});
