// Concurrent reads, writes and flushes for file stores: a fixed pool of request records (one per
// token, with its iovec slot in an IovecArena) over an AsyncEngine. A request carries itself
// through short transfers (resubmitting the rest), end of file (zeros), and the fdatasync that
// follows a write where RWF_DSYNC is refused. Any failure is handed back to the store, which
// redoes the whole operation on its synchronous path: that path already knows every fallback
// (O_DIRECT refused, RWF_DSYNC missing) and turns errno into the right BackstoreError, and
// failures are rare enough that doing it there costs nothing that matters.
import type { DataSegments } from "../../src/ring/data-segments.ts";
import type { AsyncEngine, AsyncCompletion } from "./async-engine.ts";
import { IovecArena } from "./iovec-arena.ts";

/** The store side of a request: how to redo it synchronously when the fast path failed. */
export interface SyncRedo {
  redoRead(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): void;
  redoWrite(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): void;
  redoFlush(): void;
}

const PHASE_IDLE = 0;
const PHASE_READ = 1;
const PHASE_WRITE = 2;
/** The fdatasync after a durable write whose RWF_DSYNC is off. */
const PHASE_SYNC_AFTER_WRITE = 3;
const PHASE_FLUSH = 4;

class Request {
  readonly token: number;
  phase = PHASE_IDLE;
  owner: SyncRedo | undefined;
  fd = -1;
  offsetBytes = 0;
  lengthBytes = 0;
  doneBytes = 0;
  rwFlags = 0;
  durable = false;
  syncAfterWrite = false;
  segments: DataSegments | undefined;
  startBytes = 0;
  resolve: () => void = noop;
  reject: (error: unknown) => void = noop;
  /** Made once: `new Promise(request.executor)` allocates nothing else per request. */
  readonly executor = (resolve: () => void, reject: (error: unknown) => void): void => {
    this.resolve = resolve;
    this.reject = reject;
  };

  constructor(token: number) {
    this.token = token;
  }
}

function noop(): void {}

/**
 * Requests waiting for a token at once, at most: every command in flight on every device that
 * shares this engine (a worker's devices × 256 ring slots) fits; more means a leak, not load.
 */
export const TOKEN_WAITERS_MAX = 65536;

export class AsyncFileIo {
  readonly engine: AsyncEngine;
  readonly capacity: number;
  readonly arena: IovecArena;
  readonly #requests: Request[];
  readonly #free: Int32Array;
  #freeCount: number;
  readonly #tokenWaiters: (() => void)[] = [];

  /** `openEngine` gets the completion callback; `capacity` is a power of two. */
  constructor(capacity: number, openEngine: (onComplete: AsyncCompletion) => AsyncEngine) {
    this.capacity = capacity;
    this.arena = new IovecArena(capacity);
    this.#requests = Array.from({ length: capacity }, (_, token) => new Request(token));
    this.#free = Int32Array.from({ length: capacity }, (_, index) => capacity - 1 - index);
    this.#freeCount = capacity;
    try {
      this.engine = openEngine(this.#onComplete);
    } catch (error) {
      this.arena.close();
      throw error;
    }
  }

  get inFlight(): number {
    return this.capacity - this.#freeCount;
  }

  /**
   * Takes a token and loads the iovecs of [startBytes, +lengthBytes) of `segments` into its
   * slot. Returns the token; -1 when every token is busy (wait with whenTokenFree); -2 when the
   * range needs more iovecs than one call takes (move it synchronously).
   */
  begin(segments: DataSegments, startBytes: number, lengthBytes: number): number {
    if (this.#freeCount === 0) return -1;
    const token = this.#free[this.#freeCount - 1]!;
    if (this.arena.load(token, segments, startBytes, lengthBytes) < 0) return -2;
    this.#freeCount -= 1;
    const request = this.#requests[token]!;
    request.segments = segments;
    request.startBytes = startBytes;
    request.lengthBytes = lengthBytes;
    request.doneBytes = 0;
    return token;
  }

  /** Resolves when a token is free again (requests beyond capacity queue here, in order). */
  whenTokenFree(): Promise<void> {
    if (this.#tokenWaiters.length >= TOKEN_WAITERS_MAX) return Promise.reject(new Error(`file I/O: more than ${TOKEN_WAITERS_MAX} requests wait for a token`));
    return new Promise((resolve) => this.#tokenWaiters.push(resolve));
  }

  /** Reads the loaded range from `fd` at `offsetBytes`. */
  read(token: number, owner: SyncRedo, fd: number, offsetBytes: number): Promise<void> {
    const request = this.#start(token, owner, PHASE_READ, fd, offsetBytes);
    this.engine.readv(token, fd, this.arena.addressOf(token), this.arena.remainingOf(token), offsetBytes);
    return new Promise(request.executor);
  }

  /**
   * Writes the loaded range. `rwFlags` RWF_DSYNC makes it durable on its own; `syncAfterWrite`
   * adds an fdatasync (for a durable write where RWF_DSYNC is refused).
   */
  write(token: number, owner: SyncRedo, fd: number, offsetBytes: number, rwFlags: number, durable: boolean, syncAfterWrite: boolean): Promise<void> {
    const request = this.#start(token, owner, PHASE_WRITE, fd, offsetBytes);
    request.rwFlags = rwFlags;
    request.durable = durable;
    request.syncAfterWrite = syncAfterWrite;
    this.engine.writev(token, fd, this.arena.addressOf(token), this.arena.remainingOf(token), offsetBytes, rwFlags);
    return new Promise(request.executor);
  }

  /** fdatasync of `fd`; undefined when every token is busy (wait with whenTokenFree). */
  flush(owner: SyncRedo, fd: number): Promise<void> | undefined {
    if (this.#freeCount === 0) return undefined;
    const token = this.#free[--this.#freeCount]!;
    const request = this.#start(token, owner, PHASE_FLUSH, fd, 0);
    request.segments = undefined;
    this.engine.fdatasync(token, fd);
    return new Promise(request.executor);
  }

  close(): Promise<void> {
    if (this.inFlight > 0) throw new Error(`closing file I/O with ${this.inFlight} requests in flight`);
    this.arena.close();
    return this.engine.close();
  }

  #start(token: number, owner: SyncRedo, phase: number, fd: number, offsetBytes: number): Request {
    const request = this.#requests[token]!;
    request.owner = owner;
    request.phase = phase;
    request.fd = fd;
    request.offsetBytes = offsetBytes;
    request.rwFlags = 0;
    request.syncAfterWrite = false;
    return request;
  }

  readonly #onComplete = (token: number, result: number): void => {
    const request = this.#requests[token]!;
    switch (request.phase) {
      case PHASE_READ:
        return this.#readDone(request, result);
      case PHASE_WRITE:
        return this.#writeDone(request, result);
      case PHASE_SYNC_AFTER_WRITE:
      case PHASE_FLUSH:
        return result < 0 ? this.#redo(request) : this.#finish(request);
      default:
        throw new Error(`completion for idle I/O token ${token}`);
    }
  };

  #readDone(request: Request, result: number): void {
    if (result < 0) return this.#redo(request);
    if (result === 0) {
      // End of file inside dev_size (the image was truncated under us): zeros, as a hole reads,
      // never the stale bytes of the data area.
      request.segments!.fill(0, request.startBytes + request.doneBytes, request.lengthBytes - request.doneBytes);
      return this.#finish(request);
    }
    request.doneBytes += result;
    if (request.doneBytes >= request.lengthBytes) return this.#finish(request);
    const token = request.token;
    this.arena.advance(token, result);
    this.engine.readv(token, request.fd, this.arena.addressOf(token), this.arena.remainingOf(token), request.offsetBytes + request.doneBytes);
  }

  #writeDone(request: Request, result: number): void {
    // 0 bytes for a non-empty write is no progress: the synchronous path reports it.
    if (result <= 0) return this.#redo(request);
    request.doneBytes += result;
    const token = request.token;
    if (request.doneBytes < request.lengthBytes) {
      this.arena.advance(token, result);
      this.engine.writev(token, request.fd, this.arena.addressOf(token), this.arena.remainingOf(token), request.offsetBytes + request.doneBytes, request.rwFlags);
      return;
    }
    if (!request.syncAfterWrite) return this.#finish(request);
    request.phase = PHASE_SYNC_AFTER_WRITE;
    this.engine.fdatasync(token, request.fd);
  }

  /** Redoes the request on the store's synchronous path and settles it with that outcome. */
  #redo(request: Request): void {
    const { owner, segments, offsetBytes, lengthBytes, startBytes, durable } = request;
    const phase = request.phase;
    const resolve = request.resolve;
    const reject = request.reject;
    this.#release(request);
    try {
      if (phase === PHASE_READ) owner!.redoRead(offsetBytes, lengthBytes, segments!, startBytes);
      else if (phase === PHASE_FLUSH) owner!.redoFlush();
      else owner!.redoWrite(offsetBytes, lengthBytes, segments!, startBytes, durable);
    } catch (error) {
      reject(error);
      return;
    }
    resolve();
  }

  #finish(request: Request): void {
    const resolve = request.resolve;
    this.#release(request);
    resolve();
  }

  #release(request: Request): void {
    request.phase = PHASE_IDLE;
    request.owner = undefined;
    request.segments = undefined;
    request.resolve = noop;
    request.reject = noop;
    this.#free[this.#freeCount++] = request.token;
    this.#tokenWaiters.shift()?.();
  }
}
