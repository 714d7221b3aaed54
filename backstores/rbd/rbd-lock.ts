// The rbd image's exclusive lock as the gateways' single source of truth for who is
// active/optimized (docs/ha.md). The lock is taken managed (rbd_lock_acquire: librbd never hands
// it to a peer that asks), the owner publishes its tag in the image metadata, and breaking a
// live owner blocklists it first (fencing). Every call waits on the cluster, so each runs on the
// rbd thread (rbd-lock-calls.ts); here, on the store's own thread, the calls of one image run one
// at a time, in order, and the image stays open until the last one returns.
//
// The lock is lost without our asking only by another gateway breaking it, which blocklists this
// client: the first I/O answered ESHUTDOWN tells (lost() from the connection), and so does the
// periodic check (rbd_is_exclusive_lock_owner, on the store's 2 s timer) when no I/O comes.
import { holdRuntimeTurns } from "../../src/data-plane/readable-watch.ts";
import { errnoName, EROFS, ESHUTDOWN } from "../../src/libc/errno.ts";
import { BackstoreError, type MediumOwnership } from "../types.ts";
import { callInThread } from "./rbd-connect.ts";
import type { LockCall, LockReply } from "./rbd-lock-calls.ts";
import type { RbdImage } from "./rbd-image.ts";

/** How long ownerTag()'s answer is reused: RTPG comes every few seconds on every path. */
export const OWNER_TAG_CACHE_MS = 1000;
/**
 * How long acquire() waits before answering "unavailable" (NOT READY, retried by the initiator)
 * while librbd still waits for a dead owner's watch to time out (osd_client_watch_timeout, 30 s
 * by default: past the kernel's cmd_time_out). The acquisition goes on; a later acquire() joins
 * it and finds the lock ours once it is done.
 */
export const LOCK_ACQUIRE_WAIT_MS = 5000;

export interface OwnershipHooks {
  /** The image the lock calls go to; null while the store reconnects. */
  image(): RbdImage | null;
  /** librbd's status of a lock call, for the connection (ESHUTDOWN: this client is blocklisted). */
  observe(status: number): void;
}

export class RbdOwnership implements MediumOwnership {
  readonly #description: string;
  readonly #hooks: OwnershipHooks;
  #owned = false;
  /** Counts ownership changes, so that a check begun before one does not act after it. */
  #epoch = 0;
  /** The image's lock calls, one at a time; the image stays open until this settles. */
  #queue: Promise<unknown> = Promise.resolve();
  /** An implicit acquisition under way (waiting for a dead owner), which later ones join. */
  #implicit: Promise<void> | undefined;
  #checking = false;
  #tagCache: { tag: number | undefined; atMs: number } | undefined;
  #tagAsking: Promise<number | undefined> | undefined;
  onLost?: (reason: string) => void;

  constructor(description: string, hooks: OwnershipHooks) {
    this.#description = description;
    this.#hooks = hooks;
  }

  get owned(): boolean {
    return this.#owned;
  }

  acquire(options: { breakLiveOwner: boolean; ownerTag: number }): Promise<void> {
    if (this.#owned) return Promise.resolve();
    let acquiring: Promise<void>;
    if (!options.breakLiveOwner && this.#implicit !== undefined) {
      acquiring = this.#implicit;
    } else {
      acquiring = this.#serial(() => this.#acquire(options));
      if (!options.breakLiveOwner) {
        this.#implicit = acquiring;
        const clear = () => {
          if (this.#implicit === acquiring) this.#implicit = undefined;
        };
        acquiring.then(clear, clear);
      }
    }
    if (options.breakLiveOwner) return acquiring;
    return boundedWait(acquiring, LOCK_ACQUIRE_WAIT_MS, () => new BackstoreError("unavailable", 0, `${this.#description}: still waiting for the image's lock (its owner's watch has not timed out yet)`));
  }

  release(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#owned) return;
      this.#owned = false;
      this.#epoch += 1;
      this.#tagCache = undefined;
      const image = this.#hooks.image();
      if (image === null) return; // reconnecting: the old client's lock went with it
      // The published tag is left: ownerTag() reports nobody once the lock is free, and the next
      // owner overwrites it.
      const reply = await this.#call({ kind: "lock-release", image: Number(image.handle) });
      if (reply.status < 0) throw new BackstoreError("unavailable", 0, `${this.#description}: rbd_lock_release: ${errnoName(-reply.status)}`);
    });
  }

  ownerTag(): Promise<number | undefined> {
    const cached = this.#tagCache;
    if (cached !== undefined && performance.now() - cached.atMs < OWNER_TAG_CACHE_MS) return Promise.resolve(cached.tag);
    this.#tagAsking ??= this.#askOwnerTag().finally(() => (this.#tagAsking = undefined));
    return this.#tagAsking;
  }

  /** The lock is not ours any more (this client was blocklisted): reported once per loss. */
  lost(reason: string): void {
    if (!this.#owned) return;
    this.#owned = false;
    this.#epoch += 1;
    this.#tagCache = undefined;
    this.onLost?.(reason);
  }

  /** On the store's timer: while we own the lock, asks librbd whether we still do. */
  check(): void {
    if (!this.#owned || this.#checking) return;
    const image = this.#hooks.image();
    if (image === null) return;
    this.#checking = true;
    const epoch = this.#epoch;
    // Not through the queue: a check must not wait behind a long acquisition, and one while we
    // own the lock has none before it.
    this.#call({ kind: "lock-check", image: Number(image.handle) })
      .then((reply) => {
        if (epoch !== this.#epoch) return;
        if (reply.status === -ESHUTDOWN) this.lost("the cluster blocklisted this client: another gateway broke the image's lock");
        else if (reply.status >= 0 && reply.isOwner === false) this.lost("the image's lock is not this gateway's any more (rbd_is_exclusive_lock_owner)");
        // Another failure (the cluster not answering) proves nothing: I/O and the next check tell.
      })
      .catch(() => {})
      .finally(() => (this.#checking = false));
  }

  /** The store closes: the lock goes with the image (rbd_close releases it); no onLost. */
  closing(): void {
    this.#owned = false;
    this.#epoch += 1;
  }

  /** Settles when no lock call uses the image. */
  idle(): Promise<void> {
    const checked = async () => {
      while (this.#checking) await Bun.sleep(1);
    };
    return this.#queue.then(checked, checked);
  }

  async #acquire(options: { breakLiveOwner: boolean; ownerTag: number }): Promise<void> {
    if (this.#owned) return;
    const image = this.#hooks.image();
    if (image === null) throw new BackstoreError("unavailable", 0, `${this.#description} is reconnecting to the cluster`);
    const reply = await this.#call({ kind: "lock-acquire", image: Number(image.handle), breakLiveOwner: options.breakLiveOwner, ownerTag: options.ownerTag });
    if (reply.status < 0) {
      const owners = reply.owners !== undefined && reply.owners.length > 0 ? reply.owners.join(", ") : "another client";
      if (reply.status === -EROFS) throw new BackstoreError("unavailable", 0, `${this.#description}: the image's lock is owned by ${owners}, which lives`);
      throw new BackstoreError("unavailable", 0, `${this.#description}: taking the image's lock (${reply.step ?? "acquire"}, owned by ${owners}): ${errnoName(-reply.status)}`);
    }
    this.#owned = true;
    this.#epoch += 1;
    this.#tagCache = { tag: options.ownerTag, atMs: performance.now() };
  }

  async #askOwnerTag(): Promise<number | undefined> {
    const image = this.#hooks.image();
    if (image === null) return undefined;
    const reply = await this.#call({ kind: "lock-owner", image: Number(image.handle) });
    if (reply.status < 0) throw new BackstoreError("unavailable", 0, `${this.#description}: who owns the image's lock (${reply.step}): ${errnoName(-reply.status)}`);
    const text = reply.owners === undefined || reply.owners.length === 0 ? null : (reply.tag ?? null);
    const parsed = text === null ? Number.NaN : Number(text);
    const tag = Number.isSafeInteger(parsed) ? parsed : undefined;
    this.#tagCache = { tag, atMs: performance.now() };
    return tag;
  }

  /** Runs `task` after every lock call before it. */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** One lock call on the rbd thread; a blocklisted client is told to the connection. */
  async #call(call: LockCall): Promise<LockReply> {
    // The reply comes through this thread's event loop, which a data-plane worker must turn.
    const release = holdRuntimeTurns();
    try {
      const reply = await callInThread<LockReply>(call);
      if (reply.status < 0) this.#hooks.observe(reply.status);
      return reply;
    } catch (error) {
      throw new BackstoreError("unavailable", 0, `${this.#description}: ${call.kind}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      release();
    }
  }
}

/** `work`, or `timeout()` rejected after `waitMs` if it takes longer (`work` goes on). */
function boundedWait<T>(work: Promise<T>, waitMs: number, timeout: () => Error): Promise<T> {
  const release = holdRuntimeTurns();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), waitMs);
  });
  return Promise.race([work, late]).finally(() => {
    clearTimeout(timer);
    release();
  });
}
