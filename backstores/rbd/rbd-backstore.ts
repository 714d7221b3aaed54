// A Ceph RBD image through librbd. Every operation is asynchronous and zero-copy: reads and
// writes hand librbd the iovecs of the mapped data area (rbd_aio_readv/writev), many in flight
// at once, completing in any order (rbd-requests.ts). COMPARE AND WRITE is done by the OSD
// (rbd_aio_compare_and_write), so it is atomic across every gateway serving the image. A client
// the cluster blocklisted (another gateway broke its lock) is reconnected by the store itself.
// A writable image has `ownership`: its exclusive lock, which says which gateway is
// active/optimized (rbd-lock.ts, docs/ha.md); the store never takes it by itself.
import { ptr, type Pointer } from "bun:ffi";
import { IovecArena } from "../file/iovec-arena.ts";
import { EILSEQ } from "../../src/libc/errno.ts";
import { DataSegments } from "../../src/ring/data-segments.ts";
import { BackstoreError, type Backstore, type BackstoreCapabilities, type LbaStatusExtent } from "../types.ts";
import { librbd, type Librbd } from "./librbd-binding.ts";
import { RbdAllocation } from "./rbd-allocation.ts";
import { RbdConnection } from "./rbd-connection.ts";
import { RbdOwnership } from "./rbd-lock.ts";
import { ioError } from "./rbd-errors.ts";
import { RBD_REQUESTS_MAX, type StartRequest } from "./rbd-requests.ts";
import type { RbdImage } from "./rbd-image.ts";

/** librbd's write_zeroes flags and op flags: none. */
const NO_FLAGS = 0;
/**
 * librbd 16 compares and writes atomically only within one 512-byte sector (a longer or
 * straddling request is refused with EINVAL): MAXIMUM COMPARE AND WRITE LENGTH follows.
 */
export const RBD_COMPARE_AND_WRITE_BYTES = 512;

export class RbdBackstore implements Backstore {
  readonly kind = "rbd";
  readonly description: string;
  readonly capabilities: BackstoreCapabilities;
  readonly warnings: readonly string[];
  /** The image's exclusive lock; none for a read-only image or snapshot, or an image without the exclusive-lock feature. */
  readonly ownership?: RbdOwnership;
  readonly #lib: Librbd;
  readonly #connection: RbdConnection;
  readonly #allocation: RbdAllocation;
  /** Per request slot: its iovecs (reads and writes), alive until the completion is reaped. */
  readonly #arena = new IovecArena(RBD_REQUESTS_MAX);
  readonly #mismatchOut = new BigUint64Array(1);
  onGrow?: (sizeBytes: number) => void;
  onHealth?: (available: boolean, reason: string) => void;
  #sizeBytes: number;

  constructor(image: RbdImage, blockSizeBytes: number) {
    this.#lib = librbd();
    this.#sizeBytes = image.sizeBytes;
    this.description = image.description;
    const warnings = [...image.warnings];
    const clusterAtomic = blockSizeBytes <= RBD_COMPARE_AND_WRITE_BYTES;
    if (!clusterAtomic) {
      warnings.push(
        `COMPARE AND WRITE on ${blockSizeBytes}-byte blocks is atomic only within this appliance: librbd compares and writes at most ${RBD_COMPARE_AND_WRITE_BYTES} bytes at once, so two gateways serving this image can both succeed on the same old data (use 512-byte blocks for ATS across gateways)`,
      );
    }
    this.warnings = warnings;
    this.capabilities = {
      readOnly: image.readOnly,
      unmap: !image.readOnly,
      // A discarded range reads back as zeros (RBD objects are sparse; whole objects are removed).
      unmapReadsZeroes: true,
      lbaStatus: true,
      // librbd's cache is off (rbd-connect.ts): a write completes when the OSDs have it.
      volatileCache: false,
      unmapGranularityBytes: image.objectSizeBytes,
      optimalGranularityBytes: image.objectSizeBytes,
      ...(clusterAtomic ? { atomicCompareAndWriteBytes: RBD_COMPARE_AND_WRITE_BYTES } : {}),
    };
    this.#allocation = new RbdAllocation();
    const ownership = image.readOnly || !image.features.includes("exclusive-lock") ? undefined : this.#ownershipOf(image.description);
    if (ownership !== undefined) this.ownership = ownership;
    this.#connection = new RbdConnection(this.#lib, image, {
      onPeriod: (current) => {
        this.#checkSize(current);
        ownership?.check();
      },
      onHealth: (available, reason) => this.onHealth?.(available, reason),
      onBlocklisted: () => ownership?.lost("the cluster blocklisted this client: another gateway broke the image's lock"),
      beforeClose: () => Promise.all([this.#allocation.idle(), ownership?.idle()]).then(() => {}),
    });
  }

  #ownershipOf(description: string): RbdOwnership {
    return new RbdOwnership(description, {
      image: () => this.#connection.imageOrNull(),
      observe: (status) => this.#connection.observe(status),
    });
  }

  /** The image grew: served larger from now on. A shrink is left to fail the I/O past the end. */
  readonly #checkSize = (image: RbdImage): void => {
    let size: number;
    try {
      size = image.currentSizeBytes();
    } catch {
      return; // the cluster is out of reach (a refresh timed out): the next period asks again
    }
    if (size <= this.#sizeBytes) return;
    this.#sizeBytes = size;
    this.onGrow?.(size);
  };

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): Promise<void> {
    return this.#vectored(false, offsetBytes, lengthBytes, target, targetStartBytes);
  }

  /** Durable or not, the write completes when the OSDs have it: librbd's cache is off. */
  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, _durable: boolean): Promise<void> {
    return this.#vectored(true, offsetBytes, lengthBytes, source, sourceStartBytes);
  }

  flush(): Promise<void> {
    return this.#request("write", 0, "flush at 0", (image) => (_slot, completion) => this.#lib.rbd.rbd_aio_flush(image, completion)).then(() => {});
  }

  unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    this.#checkWritable(offsetBytes);
    return this.#request("write", offsetBytes, `discard at ${offsetBytes}`, (image) => (_slot, completion) =>
      this.#lib.rbd.rbd_aio_discard(image, offsetBytes, lengthBytes, completion),
    ).then(() => {});
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, _deallocate: boolean, _durable: boolean): Promise<void> {
    this.#checkWritable(offsetBytes);
    return this.#request("write", offsetBytes, `write zeroes at ${offsetBytes}`, (image) => (_slot, completion) =>
      this.#lib.rbd.rbd_aio_write_zeroes(image, offsetBytes, lengthBytes, completion, NO_FLAGS, NO_FLAGS),
    ).then(() => {});
  }

  /**
   * One OSD operation compares `compare` with the medium at `offsetBytes` and writes `write` only
   * if they match. Returns -1 when written, else the offset of the first differing byte.
   */
  async compareAndWrite(offsetBytes: number, compare: Uint8Array, write: Uint8Array, _durable: boolean): Promise<number> {
    this.#checkWritable(offsetBytes);
    const lengthBytes = compare.length;
    if (lengthBytes !== write.length || (offsetBytes % RBD_COMPARE_AND_WRITE_BYTES) + lengthBytes > RBD_COMPARE_AND_WRITE_BYTES) {
      throw new Error(`rbd compare-and-write of ${lengthBytes} bytes at ${offsetBytes}: not within one ${RBD_COMPARE_AND_WRITE_BYTES}-byte sector`);
    }
    const mismatch = this.#mismatchOut;
    const result = await this.#request(
      "write",
      offsetBytes,
      `compare and write at ${offsetBytes}`,
      (image) => (_slot, completion) =>
        this.#lib.rbd.rbd_aio_compare_and_write(image, offsetBytes, lengthBytes, ptr(compare), ptr(write), completion, ptr(mismatch), NO_FLAGS),
      { polled: true, hold: [compare, write], miscompareIsResult: true },
    );
    if (result === -EILSEQ) return this.#firstDifference(offsetBytes, compare);
    return -1;
  }

  /**
   * librbd's mismatch offset is wrong past the image's first object (it adds the object's start
   * to an offset already relative to the image): the medium is read back and compared instead.
   */
  async #firstDifference(offsetBytes: number, compare: Uint8Array): Promise<number> {
    const medium = new Uint8Array(compare.length);
    const segments = new DataSegments(medium, Number(ptr(medium)), 1);
    segments.push(0, medium.length);
    await this.read(offsetBytes, medium.length, segments, 0);
    for (let index = 0; index < medium.length; index += 1) if (medium[index] !== compare[index]) return index;
    // Another gateway wrote the compare data in between: the miscompare stands, at its first byte.
    return 0;
  }

  lbaStatus(offsetBytes: number): Promise<LbaStatusExtent> {
    const image = this.#connection.imageOrNull();
    if (image === null) return Promise.reject(new BackstoreError("unavailable", offsetBytes, `${this.description} is reconnecting to the cluster`));
    return this.#allocation.extentAt(image, offsetBytes, this.#sizeBytes);
  }

  async close(): Promise<void> {
    // An allocation walk on the rbd thread uses the image until it ends.
    await this.#allocation.close();
    this.ownership?.closing();
    await this.#connection.close();
    this.#arena.close();
  }

  #checkWritable(offsetBytes: number): void {
    if (this.capabilities.readOnly) throw new BackstoreError("write-protected", offsetBytes, `${this.description} is read-only`);
  }

  #vectored(write: boolean, offsetBytes: number, lengthBytes: number, segments: DataSegments, startBytes: number): Promise<void> {
    if (write) this.#checkWritable(offsetBytes);
    const kind = write ? "write" : "read";
    const rbd = this.#lib.rbd;
    const request = this.#request(kind, offsetBytes, `${kind} of ${lengthBytes} bytes at ${offsetBytes}`, (image) => (slot, completion) => {
      const count = this.#arena.load(slot, segments, startBytes, lengthBytes);
      if (count < 0) throw new BackstoreError(kind, offsetBytes, `a transfer of more than ${this.#arena.iovecsPerSlot} segments`);
      const iovecs = this.#arena.addressOf(slot) as Pointer;
      return write ? rbd.rbd_aio_writev(image, iovecs, count, offsetBytes, completion) : rbd.rbd_aio_readv(image, iovecs, count, offsetBytes, completion);
    });
    return request.then(() => {});
  }

  /**
   * One librbd call on the connected image; resolves with librbd's result (≥ 0), rejects with the
   * BackstoreError for a failure. `miscompareIsResult`: EILSEQ resolves (compare-and-write).
   */
  #request(
    kind: "read" | "write",
    offsetBytes: number,
    what: string,
    starter: (image: Pointer) => StartRequest,
    options: { polled?: boolean; hold?: object; miscompareIsResult?: boolean } = {},
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const requests = this.#connection.requestsOrNull();
      if (requests === null) throw new BackstoreError("unavailable", offsetBytes, `${this.description} is reconnecting to the cluster`);
      requests.submit(
        starter(requests.image),
        (result) => {
          this.#connection.observe(result);
          if (result >= 0 || (options.miscompareIsResult === true && result === -EILSEQ)) resolve(result);
          else reject(ioError(kind, offsetBytes, result, what));
        },
        options,
      );
    });
  }
}
