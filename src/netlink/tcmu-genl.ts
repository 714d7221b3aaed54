// The TCM-USER generic netlink family (include/uapi/linux/target_core_user.h; kernel side in
// target_core_user.c, see shared/reference/kernel-tcmu.md "Netlink"). The kernel multicasts
// ADDED/REMOVED/RECONFIG_DEVICE on the "config" group, each carrying the UIO name, the UIO minor
// and the se_device index; a handler answers *_DONE {CMD_STATUS, DEVICE_ID}, which the kernel
// waits for only while SUPP_KERN_CMD_REPLY is on and the device's nl_reply_supported is > 0.
import {
  encodeGenlMessage,
  NetlinkFormatError,
  NLM_F_ACK,
  NLM_F_REQUEST,
  readString,
  readU32,
  readU64,
  readU8,
  s32Attribute,
  u32Attribute,
  u8Attribute,
  type GenlMessage,
} from "./message.ts";

// The family's commands and attributes are the uapi header's, mirrored once in src/ring/uapi.ts.
import * as uapi from "../ring/uapi.ts";

export {
  TCMU_GENL_FAMILY_NAME as TCMU_FAMILY_NAME,
  TCMU_MCGRP_CONFIG,
  TCMU_CMD_ADDED_DEVICE,
  TCMU_CMD_REMOVED_DEVICE,
  TCMU_CMD_RECONFIG_DEVICE,
  TCMU_CMD_ADDED_DEVICE_DONE,
  TCMU_CMD_REMOVED_DEVICE_DONE,
  TCMU_CMD_RECONFIG_DEVICE_DONE,
  TCMU_CMD_SET_FEATURES,
  TCMU_ATTR_DEVICE,
  TCMU_ATTR_MINOR,
  TCMU_ATTR_DEV_CFG,
  TCMU_ATTR_DEV_SIZE,
  TCMU_ATTR_WRITECACHE,
  TCMU_ATTR_CMD_STATUS,
  TCMU_ATTR_DEVICE_ID,
  TCMU_ATTR_SUPP_KERN_CMD_REPLY,
} from "../ring/uapi.ts";
export const TCMU_GENL_VERSION = 2;

export type EventKind = "added" | "removed" | "reconfig";

export type ReconfigChange =
  | { kind: "dev_config"; devConfig: string }
  | { kind: "dev_size"; sizeBytes: number }
  | { kind: "write_cache"; enabled: boolean };

interface EventBase {
  /** The UIO name: tcm-user/<hba>/<name>/<dev_config>. */
  uioName: string;
  /** The UIO minor: the device is /dev/uio<minor>. */
  minor: number;
  /** se_device.dev_index: what a *_DONE reply names. */
  deviceId: number;
}

export type TcmuEvent =
  | (EventBase & { kind: "added" })
  | (EventBase & { kind: "removed" })
  | (EventBase & { kind: "reconfig"; change: ReconfigChange });

const DONE_COMMAND: Record<EventKind, number> = {
  added: uapi.TCMU_CMD_ADDED_DEVICE_DONE,
  removed: uapi.TCMU_CMD_REMOVED_DEVICE_DONE,
  reconfig: uapi.TCMU_CMD_RECONFIG_DEVICE_DONE,
};

/** The event a kernel multicast carries; undefined for commands that are not events. */
export function decodeTcmuEvent(message: GenlMessage): TcmuEvent | undefined {
  const kind = eventKind(message.command);
  if (kind === undefined) return undefined;
  const uioName = readString(message.attributes.get(uapi.TCMU_ATTR_DEVICE));
  const minor = readU32(message.attributes.get(uapi.TCMU_ATTR_MINOR));
  const deviceId = readU32(message.attributes.get(uapi.TCMU_ATTR_DEVICE_ID));
  if (uioName === undefined || minor === undefined || deviceId === undefined) {
    throw new NetlinkFormatError(`TCM-USER ${kind} event without DEVICE, MINOR or DEVICE_ID`);
  }
  const base = { uioName: uioName.trim(), minor, deviceId };
  if (kind !== "reconfig") return { ...base, kind };
  return { ...base, kind, change: decodeChange(message) };
}

function eventKind(command: number): EventKind | undefined {
  if (command === uapi.TCMU_CMD_ADDED_DEVICE) return "added";
  if (command === uapi.TCMU_CMD_REMOVED_DEVICE) return "removed";
  if (command === uapi.TCMU_CMD_RECONFIG_DEVICE) return "reconfig";
  return undefined;
}

function decodeChange(message: GenlMessage): ReconfigChange {
  const devConfig = readString(message.attributes.get(uapi.TCMU_ATTR_DEV_CFG));
  // The kernel passes what was written to attrib/dev_config verbatim, newline from echo included.
  if (devConfig !== undefined) return { kind: "dev_config", devConfig: devConfig.trim() };
  const sizeBytes = readU64(message.attributes.get(uapi.TCMU_ATTR_DEV_SIZE));
  if (sizeBytes !== undefined) return { kind: "dev_size", sizeBytes };
  const writeCache = readU8(message.attributes.get(uapi.TCMU_ATTR_WRITECACHE));
  if (writeCache !== undefined) return { kind: "write_cache", enabled: writeCache !== 0 };
  throw new NetlinkFormatError("RECONFIG_DEVICE event names no DEV_CFG, DEV_SIZE or WRITECACHE");
}

/**
 * The *_DONE reply to `event`. `status` is 0 or a negative errno; for RECONFIG a non-zero status
 * is a veto (the kernel keeps the old value and fails the configfs write with it), for ADDED it
 * fails `enable`.
 */
export function encodeDone(familyId: number, sequence: number, event: TcmuEvent, status: number): Uint8Array {
  return encodeGenlMessage({
    familyId,
    command: DONE_COMMAND[event.kind],
    version: TCMU_GENL_VERSION,
    flags: NLM_F_REQUEST | NLM_F_ACK,
    sequence,
    attributes: [s32Attribute(uapi.TCMU_ATTR_CMD_STATUS, status), u32Attribute(uapi.TCMU_ATTR_DEVICE_ID, event.deviceId)],
  });
}

/** An ADDED_DEVICE_DONE for a device found waiting by a scan (its event was missed). */
export function encodeAddedDone(familyId: number, sequence: number, deviceId: number, status: number): Uint8Array {
  return encodeDone(familyId, sequence, { kind: "added", uioName: "", minor: 0, deviceId }, status);
}

/** SET_FEATURES{SUPP_KERN_CMD_REPLY}: module-wide, whoever sends it last wins. */
export function encodeSetFeatures(familyId: number, sequence: number, replySupported: boolean): Uint8Array {
  return encodeGenlMessage({
    familyId,
    command: uapi.TCMU_CMD_SET_FEATURES,
    version: TCMU_GENL_VERSION,
    flags: NLM_F_REQUEST | NLM_F_ACK,
    sequence,
    attributes: [u8Attribute(uapi.TCMU_ATTR_SUPP_KERN_CMD_REPLY, replySupported ? 1 : 0)],
  });
}
