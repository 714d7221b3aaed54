// The exclusive-lock calls, as the rbd thread (src/rbd-thread-worker.ts) makes them. Each waits
// on the cluster — rbd_lock_acquire for as long as a dead owner's watch lives (the OSD's
// osd_client_watch_timeout, 30 s by default), since librbd breaks only the lock of an owner that
// no longer watches the image — so none runs on a data-plane worker. They answer librbd's status
// as a value; the store's thread decides what it means (rbd-lock.ts).
import { CString, ptr, type Pointer } from "bun:ffi";
import { EBUSY, ENOENT, ERANGE } from "../../src/libc/errno.ts";
import { cString, librbd, RBD_LOCK_MODE_EXCLUSIVE } from "./librbd-binding.ts";

/** The image metadata key where the lock's owner publishes its tag (its ALUA group id). */
export const OWNER_TAG_KEY = "tcmu-appliance.alua-owner";
/** Room for owners in one rbd_lock_get_owners call; an exclusive lock has at most one. */
const LOCK_OWNERS_ROOM = 4;
/** Room for the tag's decimal digits and NUL; a longer value is asked for again at its length. */
const TAG_VALUE_ROOM_BYTES = 32;

export type LockCall =
  | { kind: "lock-acquire"; image: number; breakLiveOwner: boolean; ownerTag: number }
  | { kind: "lock-release"; image: number }
  | { kind: "lock-owner"; image: number }
  | { kind: "lock-check"; image: number };

/** What a lock call found: librbd's status (< 0: -errno) and, where asked, who owns the lock. */
export interface LockReply {
  status: number;
  /** The call that failed: "acquire", "break", "metadata", "owners"… */
  step?: string;
  /** The lock's owners (client addresses), when the call looked. */
  owners?: string[];
  /** lock-owner: the published tag, null when the key is not set. */
  tag?: string | null;
  /** lock-check: rbd_is_exclusive_lock_owner's answer. */
  isOwner?: boolean;
  /** How long the call took on the thread, in ms (for the log and the tests' timings). */
  elapsedMs: number;
}

/** On the rbd thread: one lock call on the image at `call.image`. */
export function lockCall(call: LockCall): LockReply {
  const startedAt = performance.now();
  const reply = run(call);
  reply.elapsedMs = performance.now() - startedAt;
  return reply;
}

function run(call: LockCall): LockReply {
  const image = call.image as Pointer;
  const { rbd } = librbd();
  switch (call.kind) {
    case "lock-acquire":
      return acquire(image, call.breakLiveOwner, call.ownerTag);
    case "lock-release":
      return { status: rbd.rbd_lock_release(image), step: "release", elapsedMs: 0 };
    case "lock-owner": {
      const owners = lockOwners(image);
      if (owners.status < 0 || owners.owners.length === 0) return { status: owners.status, step: "owners", owners: owners.owners, elapsedMs: 0 };
      const tag = metadataGet(image, OWNER_TAG_KEY);
      return { status: tag.status, step: "metadata", owners: owners.owners, tag: tag.value, elapsedMs: 0 };
    }
    case "lock-check":
      // Asks the OSD (librbd asserts the header lock), so a blocklisted client hears ESHUTDOWN.
      return { ...ownerCheck(image), step: "check", elapsedMs: 0 };
  }
}

/**
 * rbd_lock_acquire, exclusive. With a live owner librbd 16 asks it for the lock; an owner that
 * took the lock with rbd_lock_acquire (managed: never handed over on request) refuses, and
 * rbd_lock_acquire answers -EROFS at once (measured: ~2 ms; EBUSY and EAGAIN stay inside librbd).
 * A dead owner is waited for until its watch times out, then broken (blocklisted) by librbd.
 * `breakLiveOwner`: the owners are broken first with rbd_lock_break, which blocklists each at the
 * OSDs (rbd_blocklist_on_break_lock, set true at connect) and waits for the OSD map that says so
 * before removing its lock: the fencing. Breaking first, rather than on -EROFS, also spares the
 * wait for a dead owner's watch. Then the tag is published under OWNER_TAG_KEY.
 */
function acquire(image: Pointer, breakLiveOwner: boolean, ownerTag: number): LockReply {
  const { rbd } = librbd();
  // A write before (librbd takes the lock by itself for one) may have made this client the owner:
  // breaking that would blocklist ourselves.
  if (breakLiveOwner && !ownerCheck(image).isOwner) {
    const owners = lockOwners(image);
    if (owners.status < 0) return { status: owners.status, step: "owners", elapsedMs: 0 };
    for (const owner of owners.owners) {
      const broken = rbd.rbd_lock_break(image, RBD_LOCK_MODE_EXCLUSIVE, cString(owner));
      // ENOENT: the owner let go meanwhile; EBUSY: another took it meanwhile (acquire answers).
      if (broken < 0 && broken !== -ENOENT && broken !== -EBUSY) return { status: broken, step: `break of ${owner}`, owners: owners.owners, elapsedMs: 0 };
    }
  }
  let status = rbd.rbd_lock_acquire(image, RBD_LOCK_MODE_EXCLUSIVE);
  if (status < 0) return { status, step: "acquire", owners: lockOwners(image).owners, elapsedMs: 0 };
  status = rbd.rbd_metadata_set(image, cString(OWNER_TAG_KEY), cString(String(ownerTag)));
  if (status < 0) {
    // Owning the lock without saying so would leave every gateway reporting a stale owner.
    rbd.rbd_lock_release(image);
    return { status, step: "metadata", elapsedMs: 0 };
  }
  return { status: 0, elapsedMs: 0 };
}

/** rbd_is_exclusive_lock_owner: its status, and whether this client holds the lock. */
function ownerCheck(image: Pointer): { status: number; isOwner: boolean } {
  const out = new Int32Array(1);
  const status = librbd().rbd.rbd_is_exclusive_lock_owner(image, ptr(out));
  return { status, isOwner: status >= 0 && out[0] !== 0 };
}

/** The lock's owners; none when the lock is free (librbd: -ENOENT). */
function lockOwners(image: Pointer): { status: number; owners: string[] } {
  const { rbd } = librbd();
  const mode = new Int32Array(1);
  for (let room = LOCK_OWNERS_ROOM; ; room *= 2) {
    const addresses = new BigUint64Array(room);
    const count = new BigUint64Array([BigInt(room)]);
    const status = rbd.rbd_lock_get_owners(image, ptr(mode), ptr(addresses), ptr(count));
    if (status === -ENOENT) return { status: 0, owners: [] };
    if (status === -ERANGE) continue;
    if (status < 0) return { status, owners: [] };
    const found = Number(count[0]!);
    const owners = Array.from({ length: found }, (_, index) => new CString(Number(addresses[index]!) as Pointer).toString());
    rbd.rbd_lock_get_owners_cleanup(ptr(addresses), found);
    return { status: 0, owners };
  }
}

/** An image metadata value; null when the key is not set. */
function metadataGet(image: Pointer, key: string): { status: number; value: string | null } {
  const { rbd } = librbd();
  const name = cString(key);
  let room = TAG_VALUE_ROOM_BYTES;
  for (;;) {
    const value = new Uint8Array(room);
    const length = new BigUint64Array([BigInt(room)]);
    const status = rbd.rbd_metadata_get(image, name, ptr(value), ptr(length));
    if (status === -ENOENT) return { status: 0, value: null };
    if (status === -ERANGE && Number(length[0]!) > room) {
      room = Number(length[0]!);
      continue;
    }
    if (status < 0) return { status, value: null };
    const end = value.indexOf(0);
    return { status: 0, value: Buffer.from(value.subarray(0, end < 0 ? Number(length[0]!) : end)).toString("utf8") };
  }
}
