// How librbd's results become what the initiator hears.
import { EAGAIN, ENOTCONN, errnoName, ESHUTDOWN, ETIMEDOUT } from "../../src/libc/errno.ts";
import { BackstoreError } from "../types.ts";

/**
 * librados answers these when the cluster, not the data, is the problem (an OSD or monitor past
 * its timeout, a session gone, this client blocklisted after a failover): retryable, so NOT READY
 * rather than a MEDIUM ERROR that would fail the initiator's I/O.
 */
export const UNAVAILABLE_ERRNOS: ReadonlySet<number> = new Set([ETIMEDOUT, ENOTCONN, ESHUTDOWN /* blocklisted */, EAGAIN]);

export function ioError(kind: "read" | "write", offsetBytes: number, result: number, what: string): BackstoreError {
  const errno = -result;
  return new BackstoreError(UNAVAILABLE_ERRNOS.has(errno) ? "unavailable" : kind, offsetBytes, `rbd ${what}: ${errnoName(errno)}`);
}
