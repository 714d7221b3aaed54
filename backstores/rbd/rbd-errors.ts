// How librbd's results become what the initiator hears.
import { EAGAIN, ENOTCONN, errnoName, EROFS, ESHUTDOWN, ETIMEDOUT } from "../../src/libc/errno.ts";
import { BackstoreError } from "../types.ts";

/**
 * librados answers these when the cluster, not the data, is the problem (an OSD or monitor past
 * its timeout, a session gone, this client blocklisted after a failover): retryable, so NOT READY
 * rather than a MEDIUM ERROR that would fail the initiator's I/O.
 */
export const UNAVAILABLE_ERRNOS: ReadonlySet<number> = new Set([ETIMEDOUT, ENOTCONN, ESHUTDOWN /* blocklisted */, EAGAIN]);

export function ioError(kind: "read" | "write", offsetBytes: number, result: number, what: string): BackstoreError {
  const errno = -result;
  // A write of a writable image answered EROFS: another gateway took the image's exclusive lock
  // with rbd_lock_acquire and refuses to hand it over (rbd-lock.ts). Not this gateway's to write
  // now, but no medium error either: NOT READY, and the initiator moves to the owner's path.
  if (errno === EROFS) return new BackstoreError("unavailable", offsetBytes, `rbd ${what}: EROFS (the image's exclusive lock is another gateway's)`);
  return new BackstoreError(UNAVAILABLE_ERRNOS.has(errno) ? "unavailable" : kind, offsetBytes, `rbd ${what}: ${errnoName(errno)}`);
}
