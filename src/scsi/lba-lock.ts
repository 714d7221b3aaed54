// A per-device lock over LBA ranges. Ordinary reads and writes take it shared (they may overlap
// each other, as SAM-5 SIMPLE tasks may), COMPARE AND WRITE takes it exclusive: SBC-3 5.2 wants
// the read, compare and write done "as an uninterrupted series of actions", so no other command
// may touch those LBAs in between — even when the engine has many commands in flight and the
// backstore finishes them out of order.
//
// Waiting is first-come first-served among conflicting requests: a request that overlaps an
// earlier waiter queues behind it, so a stream of writes cannot starve a COMPARE AND WRITE.
// The common case (shared, no exclusive holder or waiter) is O(1) and allocates nothing.

/** Returned by tryAcquire when the caller must wait (use acquire()). */
export const NO_TICKET = -1;

const TICKETS_INITIAL = 64;
/**
 * Waiters at once, at most. Each is a command of this unit (at most a ring's slots, 256) or an
 * EXTENDED COPY chunk another worker asked for (one per copy); more means a leak, not load.
 */
export const LOCK_WAITERS_MAX = 4096;

interface Waiter {
  startLba: number;
  endLba: number;
  exclusive: boolean;
  grant: (ticket: number) => void;
}

export class LbaRangeLock {
  #startLba = new Float64Array(TICKETS_INITIAL);
  #endLba = new Float64Array(TICKETS_INITIAL);
  #exclusive = new Uint8Array(TICKETS_INITIAL);
  /** Tickets held now, densely packed; #positionOf[ticket] is the index in it (-1: free). */
  #held = new Int32Array(TICKETS_INITIAL);
  #positionOf = new Int32Array(TICKETS_INITIAL).fill(-1);
  #heldCount = 0;
  #freeTickets = Int32Array.from({ length: TICKETS_INITIAL }, (_, index) => TICKETS_INITIAL - 1 - index);
  #freeCount = TICKETS_INITIAL;
  #exclusiveHeldCount = 0;
  readonly #waiters: Waiter[] = [];

  get heldCount(): number {
    return this.#heldCount;
  }

  get waitingCount(): number {
    return this.#waiters.length;
  }

  /** Takes [startLba, endLba) now if nothing conflicts; returns a ticket or NO_TICKET. */
  tryAcquire(startLba: number, endLba: number, exclusive: boolean): number {
    const mustCheck = exclusive || this.#exclusiveHeldCount > 0 || this.#waiters.length > 0;
    if (mustCheck) {
      if (this.#conflictsWithHeld(startLba, endLba, exclusive)) return NO_TICKET;
      if (this.#conflictsWithWaiters(startLba, endLba, exclusive, this.#waiters.length)) return NO_TICKET;
    }
    return this.#grant(startLba, endLba, exclusive);
  }

  /** Takes the range, waiting behind conflicting holders and earlier conflicting waiters. */
  acquire(startLba: number, endLba: number, exclusive: boolean): Promise<number> {
    const ticket = this.tryAcquire(startLba, endLba, exclusive);
    if (ticket !== NO_TICKET) return Promise.resolve(ticket);
    if (this.#waiters.length >= LOCK_WAITERS_MAX) return Promise.reject(new Error(`LBA range lock: more than ${LOCK_WAITERS_MAX} waiters`));
    return new Promise((grant) => this.#waiters.push({ startLba, endLba, exclusive, grant }));
  }

  release(ticket: number): void {
    const position = this.#positionOf[ticket]!;
    if (position < 0) throw new Error(`LBA lock ticket ${ticket} released twice`);
    const last = this.#held[this.#heldCount - 1]!;
    this.#held[position] = last;
    this.#positionOf[last] = position;
    this.#positionOf[ticket] = -1;
    this.#heldCount -= 1;
    if (this.#exclusive[ticket] === 1) this.#exclusiveHeldCount -= 1;
    this.#freeTickets[this.#freeCount++] = ticket;
    if (this.#waiters.length > 0) this.#wakeWaiters();
  }

  /** Grants, in order, every waiter that conflicts with no holder and no earlier waiter. */
  #wakeWaiters(): void {
    let index = 0;
    while (index < this.#waiters.length) {
      const waiter = this.#waiters[index]!;
      const blocked =
        this.#conflictsWithHeld(waiter.startLba, waiter.endLba, waiter.exclusive) ||
        this.#conflictsWithWaiters(waiter.startLba, waiter.endLba, waiter.exclusive, index);
      if (blocked) {
        index += 1;
        continue;
      }
      this.#waiters.splice(index, 1);
      waiter.grant(this.#grant(waiter.startLba, waiter.endLba, waiter.exclusive));
    }
  }

  #grant(startLba: number, endLba: number, exclusive: boolean): number {
    if (this.#freeCount === 0) this.#grow();
    const ticket = this.#freeTickets[--this.#freeCount]!;
    this.#startLba[ticket] = startLba;
    this.#endLba[ticket] = endLba;
    this.#exclusive[ticket] = exclusive ? 1 : 0;
    if (exclusive) this.#exclusiveHeldCount += 1;
    this.#held[this.#heldCount] = ticket;
    this.#positionOf[ticket] = this.#heldCount;
    this.#heldCount += 1;
    return ticket;
  }

  #conflictsWithHeld(startLba: number, endLba: number, exclusive: boolean): boolean {
    for (let index = 0; index < this.#heldCount; index += 1) {
      const ticket = this.#held[index]!;
      if ((exclusive || this.#exclusive[ticket] === 1) && startLba < this.#endLba[ticket]! && this.#startLba[ticket]! < endLba) {
        return true;
      }
    }
    return false;
  }

  #conflictsWithWaiters(startLba: number, endLba: number, exclusive: boolean, before: number): boolean {
    for (let index = 0; index < before; index += 1) {
      const waiter = this.#waiters[index]!;
      if ((exclusive || waiter.exclusive) && startLba < waiter.endLba && waiter.startLba < endLba) return true;
    }
    return false;
  }

  #grow(): void {
    const oldCapacity = this.#startLba.length;
    const capacity = oldCapacity * 2;
    this.#startLba = grown(this.#startLba, new Float64Array(capacity));
    this.#endLba = grown(this.#endLba, new Float64Array(capacity));
    this.#exclusive = grown(this.#exclusive, new Uint8Array(capacity));
    this.#held = grown(this.#held, new Int32Array(capacity));
    const positions = new Int32Array(capacity).fill(-1);
    positions.set(this.#positionOf);
    this.#positionOf = positions;
    const free = new Int32Array(capacity);
    for (let ticket = capacity - 1; ticket >= oldCapacity; ticket -= 1) free[this.#freeCount++] = ticket;
    this.#freeTickets = free;
  }
}

function grown<T extends Float64Array | Uint8Array | Int32Array>(old: T, next: T): T {
  next.set(old);
  return next;
}
