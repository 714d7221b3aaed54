// Finds TCMU devices: /sys/class/uio/uio*/name holds `tcm-user/<hba>/<name>/<subtype>/<path>`
// (tcmu-design.rst, "Device discovery"); the device's attributes live in configfs under
// target/core/user_<hba>/<name>. Only devices of our subtype are claimed.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ALUA_DEFAULT_GROUP, ALUA_GROUP_FILES, aluaGroupFromTexts, deviceAluaFrom, type AluaGroupReading, type AluaGroupTexts } from "../configfs/alua-groups.ts";
import type { AluaConfig } from "../scsi/alua.ts";

export const TCM_USER_PREFIX = "tcm-user";
export const DEFAULT_SUBTYPE = "appliance";

export interface SystemRoots {
  /** Where sysfs is mounted (tests point this at a fake tree). */
  sysfs: string;
  /** Where configfs is mounted. */
  configfs: string;
  /** Where device nodes are (/dev). */
  dev: string;
}

export const SYSTEM_ROOTS: SystemRoots = { sysfs: "/sys", configfs: "/sys/kernel/config", dev: "/dev" };

export interface UioName {
  hbaId: number;
  deviceName: string;
  subtype: string;
  /** Everything after `<subtype>/`: the handler-specific config (may contain '/'). */
  configPath: string;
}

export interface DeviceAttributes {
  hwBlockSizeBytes: number;
  hwMaxSectors: number;
  devSizeBytes: number;
  emulateWriteCache: boolean;
  /** From wwn/vpd_unit_serial; empty when the kernel has none. */
  unitSerial: string;
}

export interface TcmuDeviceInfo extends UioName {
  /** "uio3" */
  uio: string;
  devicePath: string;
  mapSizeBytes: number;
  configfsDir: string;
  attributes: DeviceAttributes;
  /**
   * The device's ALUA target port groups (configfs alua/*), read at attach; undefined when no
   * group but the kernel's default has a LUN of this device as a member.
   */
  alua?: AluaConfig;
}

/** Splits a UIO name; undefined when it is not a TCMU device name. */
export function parseUioName(name: string): UioName | undefined {
  const parts = name.trim().split("/");
  if (parts.length < 4 || parts[0] !== TCM_USER_PREFIX) return undefined;
  const hbaId = Number(parts[1]);
  if (!Number.isInteger(hbaId) || hbaId < 0) return undefined;
  const deviceName = parts[2]!;
  const subtype = parts[3]!;
  if (deviceName === "" || subtype === "") return undefined;
  return { hbaId, deviceName, subtype, configPath: parts.slice(4).join("/") };
}

export function configfsDeviceDir(roots: SystemRoots, hbaId: number, deviceName: string): string {
  return join(roots.configfs, "target", "core", `user_${hbaId}`, deviceName);
}

/** Every TCMU device of `subtype` the kernel has registered, in uio order. */
export function discoverDevices(subtype: string, roots: SystemRoots = SYSTEM_ROOTS): TcmuDeviceInfo[] {
  const classDir = join(roots.sysfs, "class", "uio");
  if (!existsSync(classDir)) return [];
  const devices: TcmuDeviceInfo[] = [];
  const uios = readdirSync(classDir).filter((entry) => /^uio\d+$/.test(entry));
  uios.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  for (const uio of uios) {
    const name = readText(join(classDir, uio, "name"));
    const parsed = name === undefined ? undefined : parseUioName(name);
    if (parsed === undefined || parsed.subtype !== subtype) continue;
    const device = describeDevice(uio, parsed, roots);
    if (device !== undefined) devices.push(device);
  }
  return devices;
}

/** Reads the map size and configfs attributes; undefined if the device vanished meanwhile. */
export function describeDevice(uio: string, name: UioName, roots: SystemRoots = SYSTEM_ROOTS): TcmuDeviceInfo | undefined {
  const mapSize = readText(join(roots.sysfs, "class", "uio", uio, "maps", "map0", "size"));
  if (mapSize === undefined) return undefined;
  const configfsDir = configfsDeviceDir(roots, name.hbaId, name.deviceName);
  const alua = deviceAluaFrom(readAluaGroupsSync(configfsDir));
  return {
    ...name,
    uio,
    devicePath: join(roots.dev, uio),
    mapSizeBytes: Number.parseInt(mapSize, 16),
    configfsDir,
    attributes: readAttributes(configfsDir),
    ...(alua === undefined ? {} : { alua }),
  };
}

/** configfs/alua-groups.ts's readAluaGroups(), synchronously. */
export function readAluaGroupsSync(configfsDir: string): AluaGroupReading[] {
  let names: string[];
  try {
    names = readdirSync(join(configfsDir, "alua")).sort();
  } catch {
    return [];
  }
  const groups: AluaGroupReading[] = [];
  for (const name of names) {
    if (name === ALUA_DEFAULT_GROUP) continue;
    const texts: AluaGroupTexts = {};
    for (const file of ALUA_GROUP_FILES) texts[file] = readText(join(configfsDir, "alua", name, file));
    if (texts.tg_pt_gp_id !== undefined) groups.push(aluaGroupFromTexts(name, texts));
  }
  return groups;
}

export function readAttributes(configfsDir: string): DeviceAttributes {
  const attribute = (name: string, fallback: number): number => {
    const text = readText(join(configfsDir, "attrib", name));
    const value = text === undefined ? Number.NaN : Number(text);
    return Number.isFinite(value) ? value : fallback;
  };
  const serialText = readText(join(configfsDir, "wwn", "vpd_unit_serial")) ?? "";
  // The kernel prints "T10 VPD Unit Serial Number: <serial>".
  const unitSerial = serialText.includes(":") ? serialText.slice(serialText.indexOf(":") + 1).trim() : serialText.trim();
  return {
    hwBlockSizeBytes: attribute("hw_block_size", 512),
    hwMaxSectors: attribute("hw_max_sectors", 128),
    devSizeBytes: attribute("dev_size", 0),
    emulateWriteCache: attribute("emulate_write_cache", 0) !== 0,
    unitSerial,
  };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}
