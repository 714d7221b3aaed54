// GET LBA STATUS for an rbd image: which objects exist, from rbd_diff_iterate2 with whole_object
// (the object map when the image has fast-diff, else one list-snaps per object) and
// include_parent (a clone's data in its parent counts as mapped). The walk waits on the cluster,
// so it runs on the rbd thread (src/rbd-thread-worker.ts), never on a data-plane worker. librbd
// calls back for every existing object — on the rbd thread, or from librados' threads on the
// slow path — so the callback is a thread-safe JSCallback of the store's own thread: every call
// is queued for that thread's event loop. When diff_iterate2 returns, the rbd thread makes one
// more call (the sentinel, FIFO behind librbd's, carrying the status): the walk is complete.
import { CFunction, FFIType, JSCallback, type Pointer } from "bun:ffi";
import { holdRuntimeTurns } from "../../src/data-plane/readable-watch.ts";
import { RBD_THREAD_WORKER_URL } from "../../src/worker-urls.ts";
import type { LbaStatusExtent } from "../types.ts";
import { librbd } from "./librbd-binding.ts";
import { ioError } from "./rbd-errors.ts";
import type { RbdImage } from "./rbd-image.ts";

/** Objects one lookup covers (1 GiB of 4 MiB objects); a longer extent continues in the next. */
export const LBA_STATUS_OBJECTS_MAX = 256;
/** An offset no image has: marks the end of a walk's callbacks. */
const SENTINEL_OFFSET = 2 ** 63;
const INCLUDE_PARENT = 1;
const WHOLE_OBJECT = 1;

/** int (*)(uint64_t offset, size_t length, int exists, void *arg) */
const CALLBACK_SIGNATURE = { args: [FFIType.u64, FFIType.u64, FFIType.i32, FFIType.ptr], returns: FFIType.i32 } as const;

/** One walk, as the rbd thread gets it: addresses of the image and of the store's callback. */
export interface DiffRequest {
  image: number;
  startBytes: number;
  lengthBytes: number;
  callback: number;
}

/** Sentinel callers of the callbacks seen on this (rbd) thread, by address. */
const sentinels = new Map<number, (offset: number, length: number, status: number, arg: null) => number>();
const SENTINELS_MAX = 256;

/** On the rbd thread: walks the range, then makes the sentinel call with librbd's status. */
export function diffImage(request: DiffRequest): void {
  const rbd = librbd().rbd;
  const status = rbd.rbd_diff_iterate2(request.image as Pointer, null, request.startBytes, request.lengthBytes, INCLUDE_PARENT, WHOLE_OBJECT, request.callback as Pointer, null);
  let sentinel = sentinels.get(request.callback);
  if (sentinel === undefined) {
    if (sentinels.size >= SENTINELS_MAX) sentinels.clear();
    const call = CFunction({ ptr: request.callback as Pointer, ...CALLBACK_SIGNATURE });
    sentinel = (offset, length, code, arg) => call(offset, length, code, arg) as number;
    sentinels.set(request.callback, sentinel);
  }
  sentinel(SENTINEL_OFFSET, 0, status, null);
}

/** This thread's rbd thread, made on first use; it does not keep the process alive. */
let rbdThread: Worker | undefined;
/** Walks waiting for their sentinel, failed if the rbd thread dies. */
const waiting = new Set<(error: Error) => void>();

function thread(): Worker {
  if (rbdThread === undefined) {
    const made = new Worker(RBD_THREAD_WORKER_URL);
    made.unref();
    made.addEventListener("error", (event) => {
      rbdThread = undefined;
      for (const fail of waiting) fail(new Error(`the rbd thread failed: ${event.message}`));
      waiting.clear();
    });
    rbdThread = made;
  }
  return rbdThread;
}

interface Found {
  offsetBytes: number;
  lengthBytes: number;
}

export class RbdAllocation {
  #callback: JSCallback | undefined;
  /** Existing objects of the walk under way; at most LBA_STATUS_OBJECTS_MAX. */
  readonly #found: Found[] = [];
  #delivered: ((status: number) => void) | undefined;
  /** Walks share the callback's state: one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Whether the blocks from `offsetBytes` are allocated, and how far that holds. */
  extentAt(image: RbdImage, offsetBytes: number, sizeBytes: number): Promise<LbaStatusExtent> {
    const lookup = this.#queue.then(() => this.#lookup(image, offsetBytes, sizeBytes));
    this.#queue = lookup.catch(() => {});
    return lookup;
  }

  /** Settles once no walk runs: the image must stay open until then. */
  idle(): Promise<void> {
    return this.#queue.then(() => {});
  }

  async close(): Promise<void> {
    await this.idle();
    this.#callback?.close();
    this.#callback = undefined;
  }

  async #lookup(image: RbdImage, offsetBytes: number, sizeBytes: number): Promise<LbaStatusExtent> {
    const objectBytes = image.objectSizeBytes;
    const startBytes = offsetBytes - (offsetBytes % objectBytes);
    const endBytes = Math.min(sizeBytes, startBytes + LBA_STATUS_OBJECTS_MAX * objectBytes);
    const callback = this.#callbackPointer();
    this.#found.length = 0;
    // The callbacks come through this thread's event loop, which a data-plane worker must turn.
    const release = holdRuntimeTurns();
    let status: number;
    let fail: ((error: Error) => void) | undefined;
    try {
      status = await new Promise<number>((resolve, reject) => {
        this.#delivered = resolve;
        fail = reject;
        waiting.add(reject);
        const request: DiffRequest = { image: Number(image.handle), startBytes, lengthBytes: endBytes - startBytes, callback: Number(callback) };
        thread().postMessage({ kind: "diff", ...request });
      });
    } finally {
      if (fail !== undefined) waiting.delete(fail);
      this.#delivered = undefined;
      release();
    }
    if (status < 0) throw ioError("read", offsetBytes, status, `allocation of ${image.description} at ${offsetBytes}`);
    return extentFrom(this.#found, offsetBytes, endBytes);
  }

  #callbackPointer(): Pointer {
    this.#callback ??= new JSCallback(
      (offset: number | bigint, length: number | bigint, exists: number) => {
        const at = Number(offset);
        if (at >= SENTINEL_OFFSET) this.#delivered?.(exists);
        else if (exists !== 0 && this.#found.length < LBA_STATUS_OBJECTS_MAX) this.#found.push({ offsetBytes: at, lengthBytes: Number(length) });
        return 0;
      },
      { ...CALLBACK_SIGNATURE, threadsafe: true },
    );
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
