// Devices whose `enable` is stuck waiting for an ADDED_DEVICE_DONE nobody will send: the event
// was multicast while no serve listened (killed, restarting) or it was dropped in a burst. The
// kernel registers the UIO device before it sends ADDED and marks the se_device configured only
// after the reply, so "UIO present, configfs enable reads 0" is exactly that state. The reply
// needs the se_device index, which configfs shows as statistics/scsi_dev/indx.
import { statSync } from "node:fs";
import { join } from "node:path";
import type { ConfigfsIo } from "../configfs/io.ts";
import { configfsDeviceDir, type SystemRoots } from "../uio/discover.ts";
import { listTcmuUios } from "./discover-async.ts";

export interface PendingAdded {
  uio: string;
  hbaId: number;
  deviceName: string;
  /** The dev_config (everything after the device name in the UIO name); may be empty. */
  devConfig: string;
  /** se_device.dev_index: what the reply names. */
  deviceId: number;
}

/**
 * Every TCMU device, of any handler, whose enable waits for a reply (configfs read off the loop).
 * `enabledSeen` (kept by the caller from one call to the next) remembers the devices found
 * enabled: an enable never goes back to 0, so a steady serve reads no configfs here at all. A
 * device is known by its UIO node's sysfs inode as well as its name, which a device removed and
 * made again under the same name and uio number does not share.
 */
export async function findPendingAdded(roots: SystemRoots, io: ConfigfsIo, enabledSeen = new Set<string>()): Promise<PendingAdded[]> {
  const pending: PendingAdded[] = [];
  const present = new Set<string>();
  for (const { uio, name } of listTcmuUios(roots)) {
    const parts = name.split("/");
    const hbaId = Number(parts[1]);
    const deviceName = parts[2] ?? "";
    if (!Number.isInteger(hbaId) || deviceName === "") continue;
    const identity = uioIdentity(roots, uio, name);
    if (identity === undefined) continue;
    present.add(identity);
    if (enabledSeen.has(identity)) continue;
    const dir = configfsDeviceDir(roots, hbaId, deviceName);
    const enable = await io.readAttribute(join(dir, "enable"));
    if (enable === "1") enabledSeen.add(identity);
    if (enable !== "0") continue;
    const deviceId = Number(await io.readAttribute(join(dir, "statistics", "scsi_dev", "indx")));
    if (!Number.isInteger(deviceId) || deviceId < 0) continue;
    pending.push({ uio, hbaId, deviceName, devConfig: parts.slice(3).join("/"), deviceId });
  }
  for (const identity of enabledSeen) if (!present.has(identity)) enabledSeen.delete(identity);
  return pending;
}

/** "uio3 4711 tcm-user/…": undefined when the node went away meanwhile. */
function uioIdentity(roots: SystemRoots, uio: string, name: string): string | undefined {
  try {
    return `${uio} ${statSync(join(roots.sysfs, "class", "uio", uio)).ino} ${name}`;
  } catch {
    return undefined;
  }
}
