// A serve that was killed leaves SUPP_KERN_CMD_REPLY on; until a serve runs again every
// `enable` waits, uninterruptibly, for an ADDED reply. `create` must not be the next victim:
// when the marker says the switch was left on and no serve holds the lock, it switches it off.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { findOtherTcmuDaemons, type OtherDaemon } from "../configfs/other-daemons.ts";
import { ControlSocket } from "../netlink/socket.ts";
import { encodeSetFeatures, TCMU_FAMILY_NAME } from "../netlink/tcmu-genl.ts";
import { instanceHolderPid } from "../serve/instance-lock.ts";

/**
 * Returns true when it cleared a switch a dead serve left on. Not while another TCMU daemon
 * runs: the switch is its too, and `create` then opts the device out of replies instead.
 */
export function clearStaleReplySwitch(runDir: string, otherDaemons: () => OtherDaemon[] = findOtherTcmuDaemons): boolean {
  const marker = join(runDir, "netlink-replies-on");
  if (!existsSync(marker) || instanceHolderPid(join(runDir, "serve.lock")) !== undefined) return false;
  if (otherDaemons().length > 0) {
    rmSync(marker, { force: true });
    return false;
  }
  const control = ControlSocket.open();
  try {
    const family = control.getFamily(TCMU_FAMILY_NAME);
    const sequence = control.nextSequence();
    control.request(encodeSetFeatures(family.id, sequence, false), sequence, "SET_FEATURES SUPP_KERN_CMD_REPLY=0");
    rmSync(marker, { force: true });
    return true;
  } finally {
    control.close();
  }
}
