// An iSCSI export (iscsi_target_mod): target <iqn>, TPG 1, LUN 0, one network portal. Access is
// configured before the portal exists and before the TPG is enabled, so there is never a moment
// when the LUN is reachable without it:
//   initiators listed  → explicit ACLs (generate_node_acls=0), each with the LUN mapped, and
//                        CHAP per ACL when credentials are given (authentication=1);
//   CHAP only          → any initiator that knows the secret: dynamic ACLs with TPG-wide CHAP
//                        (tpgt_1/auth), authentication=1, writable;
//   allow_anyone       → dynamic ACLs, no authentication, writable — only when asked for.
import { join } from "node:path";
import type { ChapCredentials, IscsiExportSpec } from "../appliance-config/spec.ts";
import type { SystemRoots } from "../uio/discover.ts";
import { assignLunToGroup } from "./alua-groups.ts";
import { ConfigfsError, type ConfigfsIo } from "./io.ts";
import { ensureFabric, type KernelSetup } from "./kernel-setup.ts";

export interface IscsiExportRecord {
  fabric: "iscsi";
  iqn: string;
  portal: string;
  /** "chap", "acl", "acl+chap" or "open": for `list`. */
  access: string;
  /** The ALUA group its LUN was put in. */
  aluaGroup?: string;
}

export function iscsiTargetDir(roots: SystemRoots, iqn: string): string {
  return join(roots.configfs, "target", "iscsi", iqn);
}

export function accessOf(spec: IscsiExportSpec): string {
  if (spec.initiators.length > 0) return spec.chap === undefined ? "acl" : "acl+chap";
  return spec.chap === undefined ? "open" : "chap";
}

export async function createIscsiExport(
  roots: SystemRoots,
  io: ConfigfsIo,
  setup: KernelSetup,
  deviceDir: string,
  deviceName: string,
  spec: IscsiExportSpec,
): Promise<IscsiExportRecord> {
  const record: IscsiExportRecord = { fabric: "iscsi", iqn: spec.iqn, portal: spec.portal, access: accessOf(spec) };
  if (spec.alua !== undefined) record.aluaGroup = spec.alua.group;
  await ensureFabric(roots, io, setup, "iscsi");
  const target = iscsiTargetDir(roots, spec.iqn);
  if (await io.exists(target)) throw new ConfigfsError(`iSCSI target ${target} already exists`, "EEXIST");
  const tpg = join(target, "tpgt_1");
  try {
    await io.makeDirectory(target);
    await io.makeDirectory(tpg);
    await io.makeDirectory(join(tpg, "lun", "lun_0"));
    await io.makeLink(deviceDir, join(tpg, "lun", "lun_0", deviceName));
    // Into its ALUA group before any initiator can reach it (the portal and enable come later).
    if (spec.alua !== undefined) await assignLunToGroup(io, join(tpg, "lun", "lun_0"), spec.alua.group);
    await configureAccess(io, tpg, spec);
    await io.makeDirectory(join(tpg, "np", spec.portal));
    await io.writeAttribute(join(tpg, "enable"), 1);
  } catch (error) {
    await removeIscsiExport(roots, io, record);
    throw error;
  }
  return record;
}

async function configureAccess(io: ConfigfsIo, tpg: string, spec: IscsiExportSpec): Promise<void> {
  const attribute = (name: string, value: number) => io.writeAttribute(join(tpg, "attrib", name), value);
  if (spec.initiators.length > 0) {
    await attribute("generate_node_acls", 0);
    await attribute("authentication", spec.chap === undefined ? 0 : 1);
    for (const initiator of spec.initiators) {
      const acl = join(tpg, "acls", initiator);
      await io.makeDirectory(acl);
      await io.makeDirectory(join(acl, "lun_0"));
      await io.makeLink(join(tpg, "lun", "lun_0"), join(acl, "lun_0", "lun_0"));
      if (spec.chap !== undefined) await writeCredentials(io, join(acl, "auth"), spec.chap, spec.mutualChap);
    }
    return;
  }
  if (spec.chap === undefined && !spec.allowAnyone) throw new ConfigfsError("an iSCSI export without CHAP or initiators needs allowAnyone");
  await attribute("generate_node_acls", 1);
  await attribute("cache_dynamic_acls", 1);
  await attribute("demo_mode_write_protect", 0);
  if (spec.chap !== undefined) {
    await writeCredentials(io, join(tpg, "auth"), spec.chap, spec.mutualChap);
    await attribute("authentication", 1);
  } else {
    await attribute("authentication", 0);
  }
}

async function writeCredentials(io: ConfigfsIo, authDir: string, chap: ChapCredentials, mutual: ChapCredentials | undefined): Promise<void> {
  await io.writeAttribute(join(authDir, "userid"), chap.user);
  await io.writeAttribute(join(authDir, "password"), chap.password);
  if (mutual === undefined) return;
  await io.writeAttribute(join(authDir, "userid_mutual"), mutual.user);
  await io.writeAttribute(join(authDir, "password_mutual"), mutual.password);
}

/** Disables the TPG, then removes portals, ACLs, the LUN and the target; missing pieces are skipped. */
export async function removeIscsiExport(roots: SystemRoots, io: ConfigfsIo, record: IscsiExportRecord): Promise<void> {
  const target = iscsiTargetDir(roots, record.iqn);
  for (const tpgName of (await io.listEntries(target)).filter((entry) => entry.startsWith("tpgt_"))) {
    const tpg = join(target, tpgName);
    if ((await io.readAttribute(join(tpg, "enable"))) === "1") await io.writeAttribute(join(tpg, "enable"), 0);
    for (const portal of await io.listEntries(join(tpg, "np"))) await io.removeDirectory(join(tpg, "np", portal));
    for (const acl of await io.listEntries(join(tpg, "acls"))) {
      for (const mapped of (await io.listEntries(join(tpg, "acls", acl))).filter((entry) => entry.startsWith("lun_"))) {
        await removeLinksIn(io, join(tpg, "acls", acl, mapped));
        await io.removeDirectory(join(tpg, "acls", acl, mapped));
      }
      await io.removeDirectory(join(tpg, "acls", acl));
    }
    for (const lun of (await io.listEntries(join(tpg, "lun"))).filter((entry) => entry.startsWith("lun_"))) {
      await removeLinksIn(io, join(tpg, "lun", lun));
      await io.removeDirectory(join(tpg, "lun", lun));
    }
    await io.removeDirectory(tpg);
  }
  await io.removeDirectory(target);
}

async function removeLinksIn(io: ConfigfsIo, dir: string): Promise<void> {
  for (const entry of await io.listEntries(dir)) {
    if ((await io.readLink(join(dir, entry))) !== undefined) await io.removeLink(join(dir, entry));
  }
}
