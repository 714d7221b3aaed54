// How a file store moves data: "sync" (preadv/pwritev on the event loop's thread, as before
// concurrency), or concurrently through the process's one AsyncFileIo — io_uring where the
// kernel allows it, I/O threads otherwise ("auto" picks, "io_uring" and "threads" insist). One
// engine serves every file store of the process, so its ring and threads exist once; it is made
// on first use and its choice shows in each store's description (and so in the attach log).
import { IoUringError } from "../../src/io-uring/ring.ts";
import { AsyncFileIo } from "./async-file-io.ts";
import { ThreadPoolEngine } from "./thread-pool-engine.ts";
import { UringEngine } from "./uring-engine.ts";

export type FileIoMode = "auto" | "io_uring" | "threads" | "sync";
export const FILE_IO_MODES: readonly FileIoMode[] = ["auto", "io_uring", "threads", "sync"];

/**
 * Transfers of a file in memory (tmpfs) up to this size are copied inline: cheaper than a hop
 * to another thread, whatever the size. Measured on a real 6.1 kernel (docs/benchmarks.md):
 * handing 1 MiB copies to io_uring (whose io-wq does them on tmpfs) so they overlap the ring's
 * other work gained nothing at queue depth 8 and lost 15% on writes, because the completion's
 * wake-up costs as much as the copy.
 */
export const MEMORY_INLINE_BYTES_MAX = Number.POSITIVE_INFINITY;
/** Requests in flight across all file stores; more wait for a free one (power of two). */
export const ASYNC_REQUESTS_MAX = 256;


type EngineKind = "io_uring" | "threads";

// The process-wide engines, one per kind (normally only one of them is ever made). Module state
// on purpose: an io_uring and its waiter thread per process, not per device.
const shared = new Map<EngineKind, AsyncFileIo>();
/** Why io_uring could not be had, once it has been tried. */
let uringRefusal: string | undefined;

/** What "auto" means on this thread: serve's --file-io, set by each data-plane worker at start. */
let defaultMode: FileIoMode = "auto";

export function setDefaultFileIoMode(mode: FileIoMode): void {
  if (!FILE_IO_MODES.includes(mode)) throw new Error(`file I/O mode ${String(mode)}: expected one of ${FILE_IO_MODES.join(", ")}`);
  defaultMode = mode;
}

/** The mode a store asked for, with "auto" replaced by this thread's default (--file-io). */
export function effectiveFileIoMode(requested: FileIoMode): FileIoMode {
  return requested === "auto" ? defaultMode : requested;
}

/** The shared engine for `mode`, or undefined for "sync". Throws when "io_uring" is refused. */
export function sharedFileIo(mode: FileIoMode): AsyncFileIo | undefined {
  const effective = effectiveFileIoMode(mode);
  if (effective === "sync") return undefined;
  if (effective === "threads") return engineOf("threads", "not tried (threads asked for)");
  const uring = tryUring();
  if (uring !== undefined) return uring;
  if (effective === "io_uring") throw new Error(`io_uring is unavailable: ${uringRefusal}`);
  return engineOf("threads", uringRefusal!);
}

/** Stops the shared engines (their threads keep a process alive); for tools and tests. */
export async function closeSharedFileIo(): Promise<void> {
  const engines = [...shared.values()];
  shared.clear();
  await Promise.all(engines.map((io) => io.close()));
}

function tryUring(): AsyncFileIo | undefined {
  const existing = shared.get("io_uring");
  if (existing !== undefined) return existing;
  if (uringRefusal !== undefined) return undefined;
  try {
    const io = new AsyncFileIo(ASYNC_REQUESTS_MAX, (onComplete) => UringEngine.open(ASYNC_REQUESTS_MAX, onComplete));
    shared.set("io_uring", io);
    return io;
  } catch (error) {
    if (!(error instanceof IoUringError)) throw error;
    uringRefusal = error.message;
    return undefined;
  }
}

function engineOf(kind: "threads", why: string): AsyncFileIo {
  let io = shared.get(kind);
  if (io === undefined) {
    io = new AsyncFileIo(ASYNC_REQUESTS_MAX, (onComplete) => new ThreadPoolEngine(ASYNC_REQUESTS_MAX, onComplete, why));
    shared.set(kind, io);
  }
  return io;
}
