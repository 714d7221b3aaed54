// A backstore whose every operation waits until the test lets it run, in an order a seeded PRNG
// picks: out-of-order completion on demand, reproducible from the seed. It also models a
// volatile write cache, to check durability ordering: a write lands in `bytes` (what reads
// see); it reaches `durable` (what survives power loss) when it was durable itself (FUA,
// WCE=0) or when a flush() called after it completed runs. That is the Backstore contract, and
// no more: writes that complete after flush() was called are not covered by it.
import type { Backstore, BackstoreCapabilities, LbaStatusExtent } from "../../backstores/types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";

/** xorshift32 from a seed: the tests' only source of randomness. */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0 || 0x9e37_79b9;
  }

  next(): number {
    let state = this.#state;
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    this.#state = state >>> 0;
    return this.#state;
  }

  /** An integer in [0, bound). */
  below(bound: number): number {
    return this.next() % bound;
  }
}

interface PendingOp {
  run: () => void;
  resolve: () => void;
}

interface Extent {
  offsetBytes: number;
  data: Uint8Array;
}

export class ScriptedBackstore implements Backstore {
  readonly kind = "scripted";
  readonly description = "scripted (test)";
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities = {
    readOnly: false,
    unmap: false,
    unmapReadsZeroes: false,
    lbaStatus: false,
    volatileCache: true,
  };
  /** What reads return: every write that ran. */
  readonly bytes: Uint8Array;
  /** What survives power loss. */
  readonly durable: Uint8Array;
  readonly pending: PendingOp[] = [];
  /** Told each time an operation starts waiting (a data-plane worker schedules its runs). */
  onPending: () => void = () => {};
  /** Writes that ran and are not known durable yet. */
  #volatile: Extent[] = [];
  flushes = 0;

  /** `bytes` and `durable` may be given (memory another thread sees too); else they are made. */
  constructor(sizeBytes: number, bytes: Uint8Array = new Uint8Array(sizeBytes), durable: Uint8Array = new Uint8Array(sizeBytes)) {
    this.sizeBytes = sizeBytes;
    this.bytes = bytes;
    this.durable = durable;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): Promise<void> {
    return this.#later(() => {
      target.copyFrom(this.bytes.subarray(offsetBytes, offsetBytes + lengthBytes), targetStartBytes);
    });
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): Promise<void> {
    return this.#later(() => {
      const data = new Uint8Array(lengthBytes);
      source.copyTo(data, sourceStartBytes);
      this.bytes.set(data, offsetBytes);
      if (durable) this.durable.set(data, offsetBytes);
      else this.#volatile.push({ offsetBytes, data });
    });
  }

  /**
   * Covers the writes completed by now — also those an earlier flush, still pending, covers:
   * like fdatasync, each flush waits for all of them. It makes them durable when it runs.
   */
  flush(): Promise<void> {
    const covered = [...this.#volatile];
    return this.#later(() => {
      this.flushes += 1;
      for (const extent of covered) {
        const index = this.#volatile.indexOf(extent);
        if (index < 0) continue; // an earlier-running flush made it durable already
        this.#volatile.splice(index, 1);
        this.durable.set(extent.data, extent.offsetBytes);
      }
    });
  }

  unmap(): void {
    throw new Error("the scripted store does not unmap");
  }

  writeZeroes(offsetBytes: number, lengthBytes: number): Promise<void> {
    return this.#later(() => this.bytes.fill(0, offsetBytes, offsetBytes + lengthBytes));
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    return { mapped: true, lengthBytes: this.sizeBytes - offsetBytes };
  }

  close(): void {
    if (this.pending.length > 0) throw new Error(`scripted store closed with ${this.pending.length} operations pending`);
  }

  /** Runs one pending operation chosen by `prng`; false when none is pending. */
  runOne(prng: Prng): boolean {
    if (this.pending.length === 0) return false;
    const index = prng.below(this.pending.length);
    const [op] = this.pending.splice(index, 1);
    op!.run();
    op!.resolve();
    return true;
  }

  #later(run: () => void): Promise<void> {
    return new Promise((resolve) => {
      this.pending.push({ run, resolve });
      this.onPending();
    });
  }
}

/** Lets microtasks and the driver's setImmediate batches run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
