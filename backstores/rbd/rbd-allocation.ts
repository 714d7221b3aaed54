// GET LBA STATUS for an rbd image: which objects exist, from rbd_diff_iterate2 with whole_object
// (the object map when the image has fast-diff, else one list-snaps per object) and
// include_parent (a clone's data in its parent counts as mapped). librbd calls back for every
// existing object — on the calling thread from the object map, but from librados' threads on
// the slow path — so the callback is a thread-safe JSCallback: every call is queued for this
// thread's event loop. diff_iterate2 returns only after its last callback was made; one more
// call made here (the sentinel, FIFO behind them) says when all have been delivered.
import { CFunction, FFIType, JSCallback, type Pointer } from "bun:ffi";
import { holdRuntimeTurns } from "../../src/data-plane/readable-watch.ts";
import type { LbaStatusExtent } from "../types.ts";
import type { Librbd } from "./librbd-binding.ts";
import { ioError } from "./rbd-errors.ts";
import type { RbdImage } from "./rbd-image.ts";

/** Objects one lookup covers (1 GiB of 4 MiB objects); a longer extent continues in the next. */
export const LBA_STATUS_OBJECTS_MAX = 256;
/** An offset no image has: marks the end of a lookup's callbacks. */
const SENTINEL_OFFSET = 2 ** 63;
const INCLUDE_PARENT = 1;
const WHOLE_OBJECT = 1;

/** int (*)(uint64_t offset, size_t length, int exists, void *arg) */
const CALLBACK_SIGNATURE = { args: [FFIType.u64, FFIType.u64, FFIType.i32, FFIType.ptr], returns: FFIType.i32 } as const;

interface Found {
  offsetBytes: number;
  lengthBytes: number;
}

export class RbdAllocation {
  readonly #lib: Librbd;
  #callback: JSCallback | undefined;
  #sentinel: ((offset: number, length: number, exists: number, arg: null) => number) | undefined;
  /** Existing objects of the lookup under way; at most LBA_STATUS_OBJECTS_MAX. */
  readonly #found: Found[] = [];
  #delivered: (() => void) | undefined;
  /** Lookups share the callback's state: one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(lib: Librbd) {
    this.#lib = lib;
  }

  /** Whether the blocks from `offsetBytes` are allocated, and how far that holds. */
  extentAt(image: RbdImage, offsetBytes: number, sizeBytes: number): Promise<LbaStatusExtent> {
    const lookup = this.#queue.then(() => this.#lookup(image, offsetBytes, sizeBytes));
    this.#queue = lookup.catch(() => {});
    return lookup;
  }

  close(): void {
    this.#callback?.close();
    this.#callback = undefined;
  }

  async #lookup(image: RbdImage, offsetBytes: number, sizeBytes: number): Promise<LbaStatusExtent> {
    const objectBytes = image.objectSizeBytes;
    const startBytes = offsetBytes - (offsetBytes % objectBytes);
    const endBytes = Math.min(sizeBytes, startBytes + LBA_STATUS_OBJECTS_MAX * objectBytes);
    const callback = this.#callbackPointer();
    this.#found.length = 0;
    const delivered = new Promise<void>((resolve) => (this.#delivered = resolve));
    const release = holdRuntimeTurns();
    let status: number;
    try {
      status = this.#lib.rbd.rbd_diff_iterate2(image.handle, null, startBytes, endBytes - startBytes, INCLUDE_PARENT, WHOLE_OBJECT, callback, null);
      this.#sentinel!(SENTINEL_OFFSET, 0, 0, null);
      await delivered;
    } finally {
      release();
    }
    if (status < 0) throw ioError("read", offsetBytes, status, `allocation of ${image.description} at ${offsetBytes}`);
    return extentFrom(this.#found, offsetBytes, endBytes);
  }

  #callbackPointer(): Pointer {
    if (this.#callback === undefined) {
      this.#callback = new JSCallback((offset: number | bigint, length: number | bigint, exists: number) => {
        const at = Number(offset);
        if (at >= SENTINEL_OFFSET) this.#delivered?.();
        else if (exists !== 0 && this.#found.length < LBA_STATUS_OBJECTS_MAX) this.#found.push({ offsetBytes: at, lengthBytes: Number(length) });
        return 0;
      }, { ...CALLBACK_SIGNATURE, threadsafe: true });
      const sentinel = CFunction({ ptr: this.#callback.ptr!, ...CALLBACK_SIGNATURE });
      this.#sentinel = (offset, length, exists, arg) => sentinel(offset, length, exists, arg) as number;
    }
    return this.#callback.ptr!;
  }
}

/** The extent that starts at `offsetBytes`, from the existing objects of [.., endBytes). */
export function extentFrom(found: Found[], offsetBytes: number, endBytes: number): LbaStatusExtent {
  // The slow path calls back as objects finish, in any order.
  found.sort((a, b) => a.offsetBytes - b.offsetBytes);
  const first = found.findIndex((object) => object.offsetBytes + object.lengthBytes > offsetBytes);
  if (first < 0) return { mapped: false, lengthBytes: endBytes - offsetBytes };
  if (found[first]!.offsetBytes > offsetBytes) return { mapped: false, lengthBytes: Math.min(endBytes, found[first]!.offsetBytes) - offsetBytes };
  let mappedEnd = found[first]!.offsetBytes + found[first]!.lengthBytes;
  for (let index = first + 1; index < found.length && found[index]!.offsetBytes <= mappedEnd; index += 1) {
    mappedEnd = Math.max(mappedEnd, found[index]!.offsetBytes + found[index]!.lengthBytes);
  }
  return { mapped: true, lengthBytes: Math.min(endBytes, mappedEnd) - offsetBytes };
}
