// Other TCMU handler daemons in this kernel. The kernel multicasts every user device's netlink
// events to all of them, and once any has switched SUPP_KERN_CMD_REPLY on, an `enable` waits for
// the first reply: tcmu-runner answers an error for a subtype it has no handler for, and the
// kernel tears our device down before we can attach it. A device created while one runs opts
// out of the wait (nl_reply_supported=-1), and serve leaves other handlers' events to them.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Process names (/proc/<pid>/comm) of daemons known to serve TCMU devices. */
export const KNOWN_TCMU_DAEMONS: readonly string[] = ["tcmu-runner", "qemu-tcmu"];

export interface OtherDaemon {
  name: string;
  pid: number;
}

/** The known TCMU daemons running now, other than this process. */
export function findOtherTcmuDaemons(procRoot = "/proc"): OtherDaemon[] {
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return [];
  }
  const found: OtherDaemon[] = [];
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let name: string;
    try {
      name = readFileSync(join(procRoot, entry, "comm"), "utf8").trim();
    } catch {
      continue; // exited while we looked
    }
    if (KNOWN_TCMU_DAEMONS.includes(name)) found.push({ name, pid });
  }
  return found;
}

export function describeDaemons(daemons: readonly OtherDaemon[]): string {
  return daemons.map((daemon) => `${daemon.name} (pid ${daemon.pid})`).join(", ");
}

/** findOtherTcmuDaemons, remembered for `ttlMs`: serve asks once per event, in bursts. */
export function cachedDaemonFinder(find: () => OtherDaemon[] = findOtherTcmuDaemons, ttlMs = 1000): () => OtherDaemon[] {
  let checkedAt = -Infinity;
  let last: OtherDaemon[] = [];
  return () => {
    const now = performance.now();
    if (now - checkedAt >= ttlMs) {
      last = find();
      checkedAt = now;
    }
    return last;
  };
}
