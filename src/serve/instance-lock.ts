// One `serve` per machine: an flock(2) on a lock file under the run directory. The kernel makes
// /dev/uioN exclusive too, but that only shows per device and after a second process has
// already sent SET_FEATURES and started answering netlink events; the lock refuses it up front
// with the first holder's pid. flock is released by the kernel when the holder dies (kill -9
// included), so a stale file never blocks a restart.
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import * as libc from "../libc/libc.ts";

export class InstanceLockedError extends Error {
  readonly code = "E_ALREADY_RUNNING";

  constructor(path: string, holderPid: number | undefined) {
    super(
      `another tcmu-appliance serve${holderPid === undefined ? "" : ` (pid ${holderPid})`} holds ${path}: ` +
        "only one may serve the machine's TCMU devices (stop it first, e.g. systemctl stop tcmu-appliance)",
    );
    this.name = "InstanceLockedError";
  }
}

export interface InstanceLock {
  readonly path: string;
  release(): void;
}

export function acquireInstanceLock(path: string): InstanceLock {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const fd = libc.open(path, libc.O_RDWR | libc.O_CREAT, 0o644);
  if (!libc.flock(fd, libc.LOCK_EX | libc.LOCK_NB, path)) {
    const holder = readPid(fd);
    libc.close(fd);
    throw new InstanceLockedError(path, holder);
  }
  const pidText = new TextEncoder().encode(`${process.pid}\n`);
  libc.ftruncate(fd, 0, path);
  libc.pwrite(fd, pidText, pidText.byteLength, 0, path);
  let released = false;
  return {
    path,
    release: () => {
      if (released) return;
      released = true;
      libc.ftruncate(fd, 0, path);
      libc.close(fd);
    },
  };
}

/**
 * The pid of the serve holding the lock, for `list`. Read from the file and checked in /proc
 * rather than by trying the lock: a probe holding it even briefly could make a starting serve
 * refuse to run.
 */
export function instanceHolderPid(path: string): number | undefined {
  let fd: number;
  try {
    fd = libc.open(path, libc.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    const pid = readPid(fd);
    return pid !== undefined && existsSync(`/proc/${pid}`) ? pid : undefined;
  } finally {
    libc.close(fd);
  }
}

function readPid(fd: number): number | undefined {
  const buffer = new Uint8Array(32);
  const length = libc.pread(fd, buffer, buffer.byteLength, 0);
  const pid = Number.parseInt(new TextDecoder().decode(buffer.subarray(0, length)), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
