// A TCMU device in configfs: core/user_<hba>/<name>, set up through `control` (only there can
// hw_block_size, hw_max_sectors and max_data_area_mb be given, and only before enable), then
// attributes, then `enable`. enable and rmdir make the kernel send ADDED/REMOVED_DEVICE and, with
// SUPP_KERN_CMD_REPLY on, wait for serve's verdict (io.ts keeps that off the event loop).
import { join } from "node:path";
import type { DeviceSpec } from "../appliance-config/spec.ts";
import { configfsDeviceDir, type SystemRoots } from "../uio/discover.ts";
import { ConfigfsError, type ConfigfsIo } from "./io.ts";
import { findOtherTcmuDaemons, type OtherDaemon } from "./other-daemons.ts";

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
  /** Other TCMU daemons running now (default: a look at /proc); tests inject their own. */
  findOtherDaemons?: () => OtherDaemon[];
}

export function userDeviceDir(target: UserDeviceTarget, name: string): string {
  return configfsDeviceDir(target.roots, target.hbaId, name);
}

/**
 * nl_reply_supported=-1: the kernel does not wait for any daemon's verdict on this device's
 * events, so another daemon's error reply cannot tear it down (serve attaches it from the event
 * or a scan all the same).
 */
export const NL_REPLY_OPT_OUT = -1;

/**
 * The `control` line for `spec` (comma-separated tokens; dev_config may not contain ','), with
 * the reply opt-out when another TCMU daemon answers netlink too.
 */
export function controlLine(subtype: string, spec: DeviceSpec, optOutOfReplies = false): string {
  const tokens = [
    `dev_config=${subtype}/${spec.backstore}`,
    `dev_size=${spec.sizeBytes}`,
    `hw_block_size=${spec.blockSizeBytes}`,
    `hw_max_sectors=${spec.hwMaxSectors}`,
    `max_data_area_mb=${spec.maxDataAreaMb}`,
  ];
  if (optOutOfReplies) tokens.push(`nl_reply_supported=${NL_REPLY_OPT_OUT}`);
  return tokens.join(",");
}

export interface CreatedUserDevice {
  dir: string;
  /** The other daemons the device opted out of netlink replies for; empty when it did not. */
  optedOutFor: OtherDaemon[];
}

/** Creates and enables the device; on failure removes what it made and throws. */
export async function createUserDevice(target: UserDeviceTarget, spec: DeviceSpec): Promise<CreatedUserDevice> {
  const { io } = target;
  const dir = userDeviceDir(target, spec.name);
  if (await io.exists(dir)) throw new ConfigfsError(`${dir} already exists`, "EEXIST");
  const others = (target.findOtherDaemons ?? findOtherTcmuDaemons)();
  await io.makeDirectory(join(dir, ".."));
  await io.makeDirectory(dir);
  try {
    await io.writeAttribute(join(dir, "control"), controlLine(target.subtype, spec, others.length > 0));
    // cmd_time_out can only change while the device has no export.
    await io.writeAttribute(join(dir, "attrib", "cmd_time_out"), spec.cmdTimeOutSeconds);
    if (spec.writeCache) await io.writeAttribute(join(dir, "attrib", "emulate_write_cache"), 1);
    // The kernel refuses a new serial once the device is exported; before enable, serve reads
    // it at attach. Gateways exporting one image give it one serial: the NAA designator
    // initiators join paths by is derived from it.
    if (spec.serial !== undefined) await io.writeAttribute(join(dir, "wwn", "vpd_unit_serial"), spec.serial);
    await io.writeAttribute(join(dir, "enable"), 1);
  } catch (error) {
    await removeUserDevice(target, spec.name).catch(() => {});
    throw error;
  }
  return { dir, optedOutFor: others };
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
