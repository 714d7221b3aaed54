// Every TCMU device configfs knows, with what `list` shows about it: backstore, size, UIO,
// enable and block state, where it is exported (found by following the LUN links of the
// loopback and iSCSI fabrics back to the device directory) and the ALUA group of each export
// (from the `members` of the device's groups).
import { dirname, join, resolve } from "node:path";
import type { SystemRoots } from "../uio/discover.ts";
import { aluaStateFromCode } from "../scsi/alua.ts";
import { memberKey, readAluaGroups, type AluaGroupReading } from "./alua-groups.ts";
import type { ConfigfsIo } from "./io.ts";

/** An ALUA group of a device as `list` shows it. */
export interface InventoryAluaGroup {
  name: string;
  id: number | undefined;
  /** "active-optimized"…, or "state <code>" for one the appliance never sets. */
  state: string;
  preferred: boolean;
  /** The member LUNs as the kernel lists them: "iSCSI/<iqn>/tpgt_1/lun_0". */
  members: string[];
}

export interface InventoryEntry {
  hbaId: number;
  name: string;
  dir: string;
  enabled: boolean;
  /** The dev_config ("<subtype>/<path>"), from the UIO name or attrib/dev_config. */
  devConfig: string | undefined;
  sizeBytes: number | undefined;
  blockSizeBytes: number | undefined;
  uio: string | undefined;
  /** action/block_dev: "blocked" while no handler takes commands after a graceful stop. */
  blocked: boolean;
  /** "loop naa.… lun 0", "iscsi iqn.… lun 0", each followed by " [<group> id <id> <state>]" when in an ALUA group. */
  exports: string[];
  /** The device's ALUA groups but default_tg_pt_gp: its own and its peers'. */
  aluaGroups: InventoryAluaGroup[];
}

const HBA_ENTRY = /^user_(\d+)$/;
const UIO_ENTRY = /^uio\d+$/;

export async function readInventory(roots: SystemRoots, io: ConfigfsIo): Promise<InventoryEntry[]> {
  const core = join(roots.configfs, "target", "core");
  const uios = await uioNames(roots, io);
  const exports = await exportLinks(roots, io);
  const entries: InventoryEntry[] = [];
  for (const hba of (await io.listEntries(core)).sort()) {
    const hbaMatch = HBA_ENTRY.exec(hba);
    if (hbaMatch === null) continue;
    const hbaId = Number(hbaMatch[1]);
    for (const name of (await io.listEntries(join(core, hba))).sort()) {
      const dir = join(core, hba, name);
      if (!(await io.exists(join(dir, "enable")))) continue;
      const uio = uios.get(`${hbaId}/${name}`);
      const attribute = (file: string) => io.readAttribute(join(dir, "attrib", file));
      const readings = await readAluaGroups(io, dir);
      const groups = readings.map(listedGroup);
      const groupOfLun = new Map(readings.flatMap((reading, index) => reading.members.map((member) => [memberKey(member.fabric, member.path), groups[index]!] as const)));
      entries.push({
        hbaId,
        name,
        dir,
        enabled: (await io.readAttribute(join(dir, "enable"))) === "1",
        devConfig: uio?.devConfig ?? ((await attribute("dev_config")) || undefined),
        sizeBytes: numberOrUndefined(await attribute("dev_size")),
        blockSizeBytes: numberOrUndefined(await attribute("hw_block_size")),
        uio: uio?.uio,
        blocked: (await io.readAttribute(join(dir, "action", "block_dev"))) === "blocked",
        exports: (exports.get(resolve(dir)) ?? []).map((lun) => withGroup(lun.shown, groupOfLun.get(lun.key))),
        aluaGroups: groups,
      });
    }
  }
  return entries;
}

function numberOrUndefined(text: string | undefined): number | undefined {
  const value = text === undefined || text === "" ? Number.NaN : Number(text);
  return Number.isFinite(value) ? value : undefined;
}

async function uioNames(roots: SystemRoots, io: ConfigfsIo): Promise<Map<string, { uio: string; devConfig: string }>> {
  const classDir = join(roots.sysfs, "class", "uio");
  const names = new Map<string, { uio: string; devConfig: string }>();
  for (const uio of await io.listEntries(classDir)) {
    if (!UIO_ENTRY.test(uio)) continue;
    const parts = (await io.readAttribute(join(classDir, uio, "name")))?.split("/");
    if (parts === undefined || parts.length < 3 || parts[0] !== "tcm-user") continue;
    names.set(`${parts[1]}/${parts[2]}`, { uio, devConfig: parts.slice(3).join("/") });
  }
  return names;
}

function listedGroup(group: AluaGroupReading): InventoryAluaGroup {
  const state = group.stateCode === undefined ? "unknown" : (aluaStateFromCode(group.stateCode) ?? `state ${group.stateCode}`);
  return { name: group.name, id: group.id, state, preferred: group.preferred, members: group.members.map((member) => `${member.fabric}/${member.path}`) };
}

/** "iscsi iqn.… lun 0 [gw-a id 1 active-optimized]". */
function withGroup(shown: string, group: InventoryAluaGroup | undefined): string {
  if (group === undefined) return shown;
  return `${shown} [${group.name} id ${group.id ?? "-"} ${group.state}${group.preferred ? ", preferred" : ""}]`;
}

interface ExportLun {
  /** "loop naa.… lun 0", "iscsi iqn.… lun 0". */
  shown: string;
  /** The LUN as an ALUA group's `members` names it (memberKey()). */
  key: string;
}

/** Resolved device directory → every LUN linked to it. */
async function exportLinks(roots: SystemRoots, io: ConfigfsIo): Promise<Map<string, ExportLun[]>> {
  const links = new Map<string, ExportLun[]>();
  for (const [fabric, label] of [["loopback", "loop"], ["iscsi", "iscsi"]] as const) {
    const fabricDir = join(roots.configfs, "target", fabric);
    for (const wwn of await io.listEntries(fabricDir)) {
      for (const tpg of (await io.listEntries(join(fabricDir, wwn))).filter((entry) => entry.startsWith("tpgt_"))) {
        const lunDir = join(fabricDir, wwn, tpg, "lun");
        for (const lun of (await io.listEntries(lunDir)).filter((entry) => entry.startsWith("lun_"))) {
          for (const entry of await io.listEntries(join(lunDir, lun))) {
            const path = join(lunDir, lun, entry);
            const target = await io.readLink(path);
            if (target === undefined) continue;
            const device = resolve(dirname(path), target);
            const shown = `${label} ${wwn}${tpg === "tpgt_1" ? "" : `/${tpg}`} ${lun.replace("_", " ")}`;
            links.set(device, [...(links.get(device) ?? []), { shown, key: memberKey(fabric, `${wwn}/${tpg}/${lun}`) }]);
          }
        }
      }
    }
  }
  return links;
}
