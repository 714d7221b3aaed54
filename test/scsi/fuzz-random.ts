// The fuzzer's random source: seeded, fast, reproducible from the seed alone.

/** sfc32: small, fast, seeded; a failure prints its seed and the seed reproduces it. */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #pool: Uint8Array | undefined;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let index = 0; index < 16; index += 1) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Integer in [0, bound). */
  below(bound: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * bound);
  }

  chance(probability: number): boolean {
    return this.u32() / 0x1_0000_0000 < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /**
   * Fills `target` with random bytes: a random window of a pool made once from the seed (a
   * native copy, so large Data-Out costs little), its first word freshly random.
   */
  fill(target: Uint8Array, start: number, length: number): void {
    const pool = this.#randomPool();
    if (length > pool.length) throw new Error(`random fill of ${length} bytes exceeds the pool`);
    target.set(pool.subarray(this.below(pool.length - length + 1)).subarray(0, length), start);
    for (let index = 0; index < Math.min(4, length); index += 1) target[start + index] = this.u32();
  }

  #randomPool(): Uint8Array {
    if (this.#pool !== undefined) return this.#pool;
    const pool = new Uint8Array(RANDOM_POOL_BYTES);
    for (let index = 0; index < pool.length; index += 4) new DataView(pool.buffer).setUint32(index, this.u32());
    this.#pool = pool;
    return pool;
  }
}

const RANDOM_POOL_BYTES = 256 * 1024;
