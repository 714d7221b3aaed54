import { describe, expect, test } from "bun:test";
import { LbaRangeLock, LOCK_WAITERS_MAX, NO_TICKET } from "../../src/scsi/lba-lock.ts";

describe("LbaRangeLock", () => {
  test("shared holders overlap freely; an exclusive request waits for overlapping ones only", async () => {
    const lock = new LbaRangeLock();
    const first = lock.tryAcquire(0, 10, false);
    const second = lock.tryAcquire(5, 15, false);
    expect(first).not.toBe(NO_TICKET);
    expect(second).not.toBe(NO_TICKET);
    expect(lock.tryAcquire(20, 30, true)).not.toBe(NO_TICKET);
    expect(lock.tryAcquire(8, 9, true)).toBe(NO_TICKET);
    let granted = false;
    const exclusive = lock.acquire(8, 9, true).then((ticket) => {
      granted = true;
      return ticket;
    });
    lock.release(first);
    await Promise.resolve();
    expect(granted).toBe(false);
    lock.release(second);
    const ticket = await exclusive;
    expect(granted).toBe(true);
    lock.release(ticket);
  });

  test("a shared request queues behind an earlier overlapping exclusive waiter (no starvation)", async () => {
    const lock = new LbaRangeLock();
    const reader = lock.tryAcquire(0, 4, false);
    const order: string[] = [];
    const exclusive = lock.acquire(0, 4, true).then((ticket) => {
      order.push("exclusive");
      lock.release(ticket);
    });
    expect(lock.tryAcquire(2, 3, false)).toBe(NO_TICKET);
    const later = lock.acquire(2, 3, false).then((ticket) => {
      order.push("shared");
      lock.release(ticket);
    });
    // A request that overlaps nobody waiting is not held up.
    const elsewhere = lock.tryAcquire(100, 101, false);
    expect(elsewhere).not.toBe(NO_TICKET);
    lock.release(elsewhere);
    lock.release(reader);
    await Promise.all([exclusive, later]);
    expect(order).toEqual(["exclusive", "shared"]);
    expect(lock.heldCount).toBe(0);
    expect(lock.waitingCount).toBe(0);
  });

  test("tickets grow past the initial capacity and a double release is a bug", () => {
    const lock = new LbaRangeLock();
    const tickets = Array.from({ length: 200 }, (_, index) => lock.tryAcquire(index, index + 1, false));
    expect(new Set(tickets).size).toBe(200);
    for (const ticket of tickets) lock.release(ticket);
    expect(lock.heldCount).toBe(0);
    expect(() => lock.release(tickets[0]!)).toThrow("released twice");
  });

  test("the waiter queue is bounded: one waiter past LOCK_WAITERS_MAX is refused, the others are all granted", async () => {
    const lock = new LbaRangeLock();
    const holder = lock.tryAcquire(0, 8, true);
    const waiting = Array.from({ length: LOCK_WAITERS_MAX }, () => lock.acquire(0, 8, false));
    expect(lock.waitingCount).toBe(LOCK_WAITERS_MAX);
    let refusal: unknown;
    await lock.acquire(0, 8, false).catch((error: unknown) => (refusal = error));
    expect(String(refusal)).toContain(`more than ${LOCK_WAITERS_MAX} waiters`);
    lock.release(holder);
    const tickets = await Promise.all(waiting);
    expect(tickets.every((ticket) => ticket !== NO_TICKET)).toBe(true);
    for (const ticket of tickets) lock.release(ticket);
    expect(lock.heldCount).toBe(0);
  });
});
