// Device discovery for serve, reading configfs through a ConfigfsIo (in serve: its own threads,
// configfs/thread-io.ts). A configfs path under a device whose rmdir is in progress cannot be
// looked up until that rmdir finishes (it holds the directory's inode lock), and the rmdir
// itself waits for our REMOVED reply: a synchronous read on the main thread there deadlocks the
// handler and the rmdir with it. A thread may wait; the event loop answers the REMOVED and the
// read then fails with ENOENT.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deviceAluaFrom, readAluaGroups } from "../configfs/alua-groups.ts";
import type { ConfigfsIo } from "../configfs/io.ts";
import { configfsDeviceDir, parseUioName, type DeviceAttributes, type SystemRoots, type TcmuDeviceInfo, type UioName } from "../uio/discover.ts";

/** sysfs is not configfs: its reads never wait for a netlink reply. */
function readSysfsText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

export interface UioEntry {
  uio: string;
  /** The whole UIO name: tcm-user/<hba>/<name>[/<dev_config>]. */
  name: string;
}

/** TCMU UIO devices in uio order, from sysfs. */
export function listTcmuUios(roots: SystemRoots): UioEntry[] {
  const classDir = join(roots.sysfs, "class", "uio");
  if (!existsSync(classDir)) return [];
  const entries: UioEntry[] = [];
  const uios = readdirSync(classDir).filter((entry) => /^uio\d+$/.test(entry));
  uios.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  for (const uio of uios) {
    const name = readSysfsText(join(classDir, uio, "name"));
    if (name !== undefined && name.startsWith("tcm-user/")) entries.push({ uio, name });
  }
  return entries;
}

/**
 * Devices of a subtype `claimed` for which `wanted(uio)` holds, described (configfs read off the
 * loop). One whose attributes cannot be read is passed over, told to `onUnreadable`, so the others
 * are still found; the next scan tries it again.
 */
export async function discoverDevicesAsync(
  claimed: (subtype: string) => boolean,
  roots: SystemRoots,
  io: ConfigfsIo,
  wanted: (uio: string) => boolean,
  onUnreadable: (uio: string, error: unknown) => void = () => {},
): Promise<TcmuDeviceInfo[]> {
  const devices: TcmuDeviceInfo[] = [];
  for (const entry of listTcmuUios(roots)) {
    const parsed = parseUioName(entry.name);
    if (parsed === undefined || !claimed(parsed.subtype) || !wanted(entry.uio)) continue;
    try {
      const device = await describeDeviceAsync(entry.uio, parsed, roots, io);
      if (device !== undefined) devices.push(device);
    } catch (error) {
      onUnreadable(entry.uio, error);
    }
  }
  return devices;
}

/** discover.ts's describeDevice(), with configfs read on the thread pool. */
export async function describeDeviceAsync(uio: string, name: UioName, roots: SystemRoots, io: ConfigfsIo): Promise<TcmuDeviceInfo | undefined> {
  const mapSize = readSysfsText(join(roots.sysfs, "class", "uio", uio, "maps", "map0", "size"));
  if (mapSize === undefined) return undefined;
  const configfsDir = configfsDeviceDir(roots, name.hbaId, name.deviceName);
  const attributes = await readAttributesAsync(configfsDir, io);
  if (attributes === undefined) return undefined;
  // The ALUA groups (configfs alua/*): who this gateway is in REPORT TARGET PORT GROUPS.
  const alua = deviceAluaFrom(await readAluaGroups(io, configfsDir));
  return { ...name, uio, devicePath: join(roots.dev, uio), mapSizeBytes: Number.parseInt(mapSize, 16), configfsDir, attributes, ...(alua === undefined ? {} : { alua }) };
}

/**
 * A device's attributes. A read that fails for another reason than the device being gone throws
 * (attach retries or refuses, naming it): a default in place of dev_size would serve the wrong size.
 */
async function readAttributesAsync(configfsDir: string, io: ConfigfsIo): Promise<DeviceAttributes | undefined> {
  const read = (name: string) => io.readAttributeIfPresent(join(configfsDir, "attrib", name));
  const [blockSize, maxSectors, devSize, writeCache, serialText] = await Promise.all([
    read("hw_block_size"),
    read("hw_max_sectors"),
    read("dev_size"),
    read("emulate_write_cache"),
    io.readAttribute(join(configfsDir, "wwn", "vpd_unit_serial")),
  ]);
  // The directory is gone (removed meanwhile): not a device to attach.
  if (blockSize === undefined && devSize === undefined) return undefined;
  const number = (text: string | undefined, fallback: number) => {
    const value = text === undefined ? Number.NaN : Number(text);
    return Number.isFinite(value) ? value : fallback;
  };
  // The kernel prints "T10 VPD Unit Serial Number: <serial>".
  const serial = serialText ?? "";
  return {
    hwBlockSizeBytes: number(blockSize, 512),
    hwMaxSectors: number(maxSectors, 128),
    devSizeBytes: number(devSize, 0),
    emulateWriteCache: number(writeCache, 0) !== 0,
    unitSerial: serial.includes(":") ? serial.slice(serial.indexOf(":") + 1).trim() : serial.trim(),
  };
}
