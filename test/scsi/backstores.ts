// Backstore doubles for the SCSI tests: a sparse in-memory store with chosen capabilities that
// logs what it was asked to do, and a wrapper whose writes land only when the test lets them
// (a slow disk, for interleaving commands).
import type { Backstore, BackstoreCapabilities, IoResult, LbaStatusExtent } from "../../backstores/types.ts";
import { BackstoreError } from "../../backstores/types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";

const PAGE_BYTES = 4096;

export interface WriteRecord {
  offsetBytes: number;
  lengthBytes: number;
  durable: boolean;
}

/** Sparse pages in a Map: any size, zeros where never written. */
export class MemoryBackstore implements Backstore {
  readonly kind = "memory";
  readonly description = "test memory";
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities;
  readonly writes: WriteRecord[] = [];
  readonly zeroWrites: { offsetBytes: number; lengthBytes: number; deallocate: boolean }[] = [];
  flushCount = 0;
  /** Byte offsets at which read() / write() throw a BackstoreError. */
  failReadAt: number | undefined;
  failWriteAt: number | undefined;
  readonly #pages = new Map<number, Uint8Array>();

  constructor(sizeBytes: number, capabilities: Partial<BackstoreCapabilities> = {}) {
    this.sizeBytes = sizeBytes;
    this.capabilities = { readOnly: false, unmap: true, unmapReadsZeroes: true, lbaStatus: true, volatileCache: true, ...capabilities };
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void {
    if (this.failReadAt !== undefined && offsetBytes <= this.failReadAt && this.failReadAt < offsetBytes + lengthBytes) {
      throw new BackstoreError("read", this.failReadAt, "injected read error");
    }
    const bytes = new Uint8Array(lengthBytes);
    this.#each(offsetBytes, lengthBytes, (page, inPage, length, done) => {
      const stored = this.#pages.get(page);
      if (stored !== undefined) bytes.set(stored.subarray(inPage, inPage + length), done);
    });
    target.copyFrom(bytes, targetStartBytes);
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): void {
    if (this.failWriteAt !== undefined && offsetBytes <= this.failWriteAt && this.failWriteAt < offsetBytes + lengthBytes) {
      throw new BackstoreError("write", this.failWriteAt, "injected write error");
    }
    this.writes.push({ offsetBytes, lengthBytes, durable });
    const bytes = new Uint8Array(lengthBytes);
    source.copyTo(bytes, sourceStartBytes);
    this.poke(offsetBytes, bytes);
  }

  flush(): void {
    this.flushCount += 1;
  }

  unmap(offsetBytes: number, lengthBytes: number): void {
    this.writeZeroes(offsetBytes, lengthBytes, true);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, deallocate: boolean): void {
    this.zeroWrites.push({ offsetBytes, lengthBytes, deallocate });
    this.#each(offsetBytes, lengthBytes, (page, inPage, length) => {
      const stored = this.#pages.get(page);
      if (stored === undefined) return;
      if (deallocate && length === PAGE_BYTES) this.#pages.delete(page);
      else stored.fill(0, inPage, inPage + length);
    });
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent {
    const first = Math.floor(offsetBytes / PAGE_BYTES);
    const mapped = this.#pages.has(first);
    let page = first + 1;
    const lastPage = Math.ceil(this.sizeBytes / PAGE_BYTES);
    while (page < lastPage && this.#pages.has(page) === mapped) page += 1;
    return { mapped, lengthBytes: Math.min(page * PAGE_BYTES, this.sizeBytes) - offsetBytes };
  }

  close(): void {}

  /** Test access: the stored bytes of a range. */
  peek(offsetBytes: number, lengthBytes: number): Uint8Array {
    const bytes = new Uint8Array(lengthBytes);
    this.#each(offsetBytes, lengthBytes, (page, inPage, length, done) => {
      const stored = this.#pages.get(page);
      if (stored !== undefined) bytes.set(stored.subarray(inPage, inPage + length), done);
    });
    return bytes;
  }

  /** Test access: store bytes directly. */
  poke(offsetBytes: number, bytes: Uint8Array): void {
    this.#each(offsetBytes, bytes.length, (page, inPage, length, done) => {
      let stored = this.#pages.get(page);
      if (stored === undefined) {
        stored = new Uint8Array(PAGE_BYTES);
        this.#pages.set(page, stored);
      }
      stored.set(bytes.subarray(done, done + length), inPage);
    });
  }

  #each(offsetBytes: number, lengthBytes: number, visit: (page: number, inPage: number, length: number, done: number) => void): void {
    let done = 0;
    while (done < lengthBytes) {
      const position = offsetBytes + done;
      const page = Math.floor(position / PAGE_BYTES);
      const inPage = position - page * PAGE_BYTES;
      const length = Math.min(PAGE_BYTES - inPage, lengthBytes - done);
      visit(page, inPage, length, done);
      done += length;
    }
  }
}

/**
 * Wraps a store so that writes are asynchronous and land only when released: release() applies
 * the oldest held write (its data read from the command's buffer then, as a slow disk would DMA
 * it) and resolves it. Reads go straight through, so a read can see the disk "before" a write.
 */
export class GatedBackstore implements Backstore {
  readonly kind = "gated";
  readonly description = "gated test store";
  readonly inner: Backstore;
  readonly #held: (() => void)[] = [];
  #waiters: (() => void)[] = [];

  constructor(inner: Backstore) {
    this.inner = inner;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  get capabilities(): BackstoreCapabilities {
    return this.inner.capabilities;
  }

  get heldWrites(): number {
    return this.#held.length;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): IoResult {
    return this.inner.read(offsetBytes, lengthBytes, target, targetStartBytes);
  }

  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#held.push(() => {
        try {
          const result = this.inner.write(offsetBytes, lengthBytes, source, sourceStartBytes, durable);
          if (result === undefined) resolve();
          else result.then(resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Resolves once at least `count` writes are held. */
  async whenHeld(count: number): Promise<void> {
    while (this.#held.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Lands the oldest held write. */
  release(): void {
    const next = this.#held.shift();
    if (next === undefined) throw new Error("no write is held");
    next();
  }

  flush(): IoResult {
    return this.inner.flush();
  }

  unmap(offsetBytes: number, lengthBytes: number): IoResult {
    return this.inner.unmap(offsetBytes, lengthBytes);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, deallocate: boolean, durable: boolean): IoResult {
    return this.inner.writeZeroes(offsetBytes, lengthBytes, deallocate, durable);
  }

  lbaStatus(offsetBytes: number): LbaStatusExtent | Promise<LbaStatusExtent> {
    return this.inner.lbaStatus(offsetBytes);
  }

  close(): IoResult {
    return this.inner.close();
  }
}
