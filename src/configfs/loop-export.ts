// A tcm_loop export: a local SCSI disk (/dev/sdX) for a device. The target and its initiator
// port get NAA names derived from the device name, so the same device always appears under the
// same WWN. The I_T nexus must exist before a LUN is linked (shared/reference/kernel-tcmu.md).
import { join } from "node:path";
import type { SystemRoots } from "../uio/discover.ts";
import { assignLunToGroup } from "./alua-groups.ts";
import type { ConfigfsIo } from "./io.ts";
import { ensureFabric, type KernelSetup } from "./kernel-setup.ts";

export interface LoopExportRecord {
  fabric: "loop";
  wwn: string;
  /** The ALUA group its LUN was put in. */
  aluaGroup?: string;
}

/** NAA type 5 with the LIO OUI (0x001405), 16 hex digits; the initiator port differs in one nibble. */
export function loopWwn(deviceName: string, initiator = false): string {
  return `naa.5001405${initiator ? "1" : "0"}${fnv1a32Hex(`tcmu-appliance/${deviceName}`)}`;
}

function fnv1a32Hex(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

export function loopTargetDir(roots: SystemRoots, wwn: string): string {
  return join(roots.configfs, "target", "loopback", wwn);
}

/** `aluaGroup`: an ALUA group of the device (made already) to put the LUN in. */
export async function createLoopExport(
  roots: SystemRoots,
  io: ConfigfsIo,
  setup: KernelSetup,
  deviceDir: string,
  deviceName: string,
  aluaGroup?: string,
): Promise<LoopExportRecord> {
  const record: LoopExportRecord = aluaGroup === undefined ? { fabric: "loop", wwn: loopWwn(deviceName) } : { fabric: "loop", wwn: loopWwn(deviceName), aluaGroup };
  await ensureFabric(roots, io, setup, "loopback");
  const tpg = join(loopTargetDir(roots, record.wwn), "tpgt_1");
  try {
    await io.makeDirectory(loopTargetDir(roots, record.wwn));
    await io.makeDirectory(tpg);
    await io.writeAttribute(join(tpg, "nexus"), loopWwn(deviceName, true));
    await io.makeDirectory(join(tpg, "lun", "lun_0"));
    // The kernel probes the new disk (INQUIRY, READ CAPACITY…) before symlink() returns.
    await io.makeLink(deviceDir, join(tpg, "lun", "lun_0", deviceName));
    // Only a linked LUN can change groups; until this write it is in default_tg_pt_gp.
    if (aluaGroup !== undefined) await assignLunToGroup(io, join(tpg, "lun", "lun_0"), aluaGroup);
  } catch (error) {
    await removeLoopExport(roots, io, record);
    throw error;
  }
  return record;
}

/** Unlinks the LUN, drops the nexus, removes the target; missing pieces are skipped. */
export async function removeLoopExport(roots: SystemRoots, io: ConfigfsIo, record: LoopExportRecord): Promise<void> {
  const target = loopTargetDir(roots, record.wwn);
  for (const tpgName of (await io.listEntries(target)).filter((entry) => entry.startsWith("tpgt_"))) {
    const tpg = join(target, tpgName);
    for (const lun of (await io.listEntries(join(tpg, "lun"))).filter((entry) => entry.startsWith("lun_"))) {
      for (const link of await io.listEntries(join(tpg, "lun", lun))) {
        if ((await io.readLink(join(tpg, "lun", lun, link))) !== undefined) await io.removeLink(join(tpg, "lun", lun, link));
      }
      await io.removeDirectory(join(tpg, "lun", lun));
    }
    const nexus = await io.readAttribute(join(tpg, "nexus"));
    if (nexus !== undefined && nexus !== "" && nexus !== "NULL") await io.writeAttribute(join(tpg, "nexus"), "NULL");
    await io.removeDirectory(tpg);
  }
  await io.removeDirectory(target);
}

/**
 * The /dev/sdX the kernel made for LUN `lun` of the loopback target `wwn`, once the SCSI disk
 * is probed: tpgt_1/address holds its host:channel:target; undefined until then.
 */
export async function loopDiskPath(roots: SystemRoots, io: ConfigfsIo, wwn: string, lun = 0): Promise<string | undefined> {
  const address = await io.readAttribute(join(loopTargetDir(roots, wwn), "tpgt_1", "address"));
  if (address === undefined || address === "") return undefined;
  const disks = await io.listEntries(join(roots.sysfs, "class", "scsi_device", `${address}:${lun}`, "device", "block"));
  const disk = disks[0];
  return disk === undefined ? undefined : join(roots.dev, disk);
}
