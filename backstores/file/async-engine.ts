// What the file store's concurrent I/O runs on: io_uring where the kernel allows it, a small pool
// of threads doing preadv/pwritev otherwise. Both take requests named by a token (an index the
// caller owns, < capacity), with their iovecs already in the caller's IovecArena slot, batch
// what is queued during one job of the event loop into one hand-over (one io_uring_enter, one
// wake of the threads), and report each result through the one completion callback.

export type AsyncEngineKind = "io_uring" | "threads";

/** A request finished: bytes moved (0 at end of file for reads), or -errno. */
export type AsyncCompletion = (token: number, result: number) => void;

export interface AsyncEngine {
  readonly kind: AsyncEngineKind;
  /** For the log: which engine and why (e.g. "io_uring, 256 entries"). */
  readonly description: string;
  readv(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number): void;
  /** `rwFlags`: RWF_DSYNC for a write that must be durable when it completes. */
  writev(token: number, fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, rwFlags: number): void;
  fdatasync(token: number, fd: number): void;
  /** Stops the engine's threads; every request must have completed. */
  close(): Promise<void>;
}
