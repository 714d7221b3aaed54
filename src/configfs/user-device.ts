// A TCMU device in configfs: core/user_<hba>/<name>, set up through `control` (only there can
// hw_block_size, hw_max_sectors and max_data_area_mb be given, and only before enable), then
// attributes, then `enable`. enable and rmdir make the kernel send ADDED/REMOVED_DEVICE and, with
// SUPP_KERN_CMD_REPLY on, wait for serve's verdict (io.ts keeps that off the event loop).
import { join } from "node:path";
import type { DeviceSpec } from "../appliance-config/spec.ts";
import { configfsDeviceDir, type SystemRoots } from "../uio/discover.ts";
import { ConfigfsError, type ConfigfsIo } from "./io.ts";

/**
 * The HBA appliance-made devices live under. Ownership is decided by the state file, never by
 * this number; a number of its own only keeps them apart from targetcli's user_0, user_1….
 */
export const PROVISIONING_HBA_ID = 8;

export interface UserDeviceTarget {
  roots: SystemRoots;
  io: ConfigfsIo;
  subtype: string;
  hbaId: number;
}

export function userDeviceDir(target: UserDeviceTarget, name: string): string {
  return configfsDeviceDir(target.roots, target.hbaId, name);
}

/** The `control` line for `spec` (comma-separated tokens; dev_config may not contain ','). */
export function controlLine(subtype: string, spec: DeviceSpec): string {
  return [
    `dev_config=${subtype}/${spec.backstore}`,
    `dev_size=${spec.sizeBytes}`,
    `hw_block_size=${spec.blockSizeBytes}`,
    `hw_max_sectors=${spec.hwMaxSectors}`,
    `max_data_area_mb=${spec.maxDataAreaMb}`,
  ].join(",");
}

/** Creates and enables the device; on failure removes what it made and throws. */
export async function createUserDevice(target: UserDeviceTarget, spec: DeviceSpec): Promise<string> {
  const { io } = target;
  const dir = userDeviceDir(target, spec.name);
  if (await io.exists(dir)) throw new ConfigfsError(`${dir} already exists`, "EEXIST");
  await io.makeDirectory(join(dir, ".."));
  await io.makeDirectory(dir);
  try {
    await io.writeAttribute(join(dir, "control"), controlLine(target.subtype, spec));
    // cmd_time_out can only change while the device has no export.
    await io.writeAttribute(join(dir, "attrib", "cmd_time_out"), spec.cmdTimeOutSeconds);
    if (spec.writeCache) await io.writeAttribute(join(dir, "attrib", "emulate_write_cache"), 1);
    await io.writeAttribute(join(dir, "enable"), 1);
  } catch (error) {
    await removeUserDevice(target, spec.name).catch(() => {});
    throw error;
  }
  return dir;
}

/** rmdir of the device (waits for serve's REMOVED reply), then of its HBA once empty. */
export async function removeUserDevice(target: UserDeviceTarget, name: string): Promise<void> {
  const dir = userDeviceDir(target, name);
  await target.io.removeDirectory(dir);
  try {
    await target.io.removeDirectory(join(dir, ".."));
  } catch {
    // Other devices still use the HBA.
  }
}
