// ALUA target port groups of a TCMU device in configfs: core/user_<hba>/<name>/alua/<group>.
// Each gateway exporting a shared image makes every group of every gateway on its own device
// (its own and its peers'), so every path answers REPORT TARGET PORT GROUPS alike (docs/ha.md);
// only its own group has members: the LUNs of its exports, assigned through each fabric LUN's
// alua_tg_pt_gp attribute.
//
// What the kernel (target_core_configfs.c, target_core_alua.c) insists on:
// - tg_pt_gp_id first: a group without a valid id refuses alua_access_state (EINVAL) and cannot
//   be found by name when a LUN is assigned to it (ENODEV); the id can be set only once, and
//   only if no other group of the device has it.
// - alua_access_state only once the device is enabled (ENODEV before), and only while the
//   access type includes implicit transitions.
// - a device's rmdir fails (ENOTEMPTY) while it holds groups someone made: they go after the
//   exports' LUNs and before the device. default_tg_pt_gp belongs to the kernel and is never
//   touched.
// - `members` lists "<fabric name>/<wwn>/tpgt_<tag>/<lun>" per LUN, each line ended by "\n" and a
//   NUL, formatted in a 256-byte buffer (a long IQN is cut short).
import { join } from "node:path";
import type { AluaGroupSpec, AluaStateName } from "../appliance-config/spec.ts";
import { ALUA_STATE_CODES, aluaStateFromCode, type AluaConfig } from "../scsi/alua.ts";
import type { ConfigfsIo } from "./io.ts";

/** The group the kernel makes in every device and puts every new LUN in; never ours. */
export const ALUA_DEFAULT_GROUP = "default_tg_pt_gp";
/** alua_access_type 3: implicit (configfs, the handler) and explicit (SET TARGET PORT GROUPS). */
export const ALUA_ACCESS_TYPE_IMPLICIT_EXPLICIT = 3;
/** implicit_trans_secs, the IMPLICIT TRANSITION TIME initiators are told (RTPG extended header). */
export const ALUA_IMPLICIT_TRANSITION_SECONDS = 30;

export function aluaStateCode(state: AluaStateName): number {
  return ALUA_STATE_CODES[state];
}

export function aluaGroupDir(deviceDir: string, group: string): string {
  return join(deviceDir, "alua", group);
}

/** The attribute of a fabric LUN directory (<fabric>/<wwn>/tpgt_1/lun/lun_0) naming its group. */
export function lunGroupAttribute(lunDir: string): string {
  return join(lunDir, "alua_tg_pt_gp");
}

/**
 * Makes the groups on an enabled device: mkdir, the id first, then access type, transition
 * time, preferred bit and state (last: it is the write that makes the kernel transition).
 */
export async function createAluaGroups(io: ConfigfsIo, deviceDir: string, groups: readonly AluaGroupSpec[]): Promise<void> {
  for (const group of groups) {
    const dir = aluaGroupDir(deviceDir, group.group);
    await io.makeDirectory(dir);
    await io.writeAttribute(join(dir, "tg_pt_gp_id"), group.id);
    await io.writeAttribute(join(dir, "alua_access_type"), ALUA_ACCESS_TYPE_IMPLICIT_EXPLICIT);
    await io.writeAttribute(join(dir, "implicit_trans_secs"), ALUA_IMPLICIT_TRANSITION_SECONDS);
    await io.writeAttribute(join(dir, "preferred"), group.preferred ? 1 : 0);
    await setAluaGroupState(io, deviceDir, group.group, group.state);
  }
}

/** Writes a group's alua_access_state: the state the kernel checks before a command reaches us. */
export async function setAluaGroupState(io: ConfigfsIo, deviceDir: string, group: string, state: AluaStateName): Promise<void> {
  await io.writeAttribute(join(aluaGroupDir(deviceDir, group), "alua_access_state"), aluaStateCode(state));
}

/** Puts a linked LUN in a group (the kernel needs the LUN's device and the group's id). */
export async function assignLunToGroup(io: ConfigfsIo, lunDir: string, group: string): Promise<void> {
  await io.writeAttribute(lunGroupAttribute(lunDir), group);
}

/** rmdir of the groups, last made first; missing ones are skipped. Their LUNs must be gone. */
export async function removeAluaGroups(io: ConfigfsIo, deviceDir: string, groups: readonly string[]): Promise<void> {
  for (const group of [...groups].reverse()) {
    if (group === ALUA_DEFAULT_GROUP) continue;
    await io.removeDirectory(aluaGroupDir(deviceDir, group));
  }
}

/** One member LUN as `members` lists it. */
export interface AluaMember {
  /** The kernel's fabric name: "iSCSI", "loopback"… */
  fabric: string;
  /** "<wwn>/tpgt_<tag>/<lun>", possibly cut short (see memberKey). */
  path: string;
}

/** A group as read from configfs. */
export interface AluaGroupReading {
  name: string;
  /** undefined until tg_pt_gp_id was written (the kernel shows 0 then). */
  id: number | undefined;
  stateCode: number | undefined;
  preferred: boolean;
  members: AluaMember[];
}

/** The files a group is read from, by name; discovery reads them sync or async. */
export const ALUA_GROUP_FILES = ["tg_pt_gp_id", "alua_access_state", "preferred", "members"] as const;
export type AluaGroupTexts = Partial<Record<(typeof ALUA_GROUP_FILES)[number], string>>;

export function aluaGroupFromTexts(name: string, texts: AluaGroupTexts): AluaGroupReading {
  const id = integerOrUndefined(texts.tg_pt_gp_id);
  return {
    name,
    id: id === undefined || id === 0 ? undefined : id,
    stateCode: integerOrUndefined(texts.alua_access_state),
    preferred: integerOrUndefined(texts.preferred) === 1,
    members: parseAluaMembers(texts.members ?? ""),
  };
}

/**
 * `members`: one "<fabric>/<wwn>/tpgt_<tag>/<lun>" per line, each line followed by a NUL as well.
 * Lines without a fabric and a path are skipped; a line cut short by the kernel's 256-byte buffer
 * still counts as a member (of its fabric), it only matches no export by path.
 */
export function parseAluaMembers(text: string): AluaMember[] {
  const members: AluaMember[] = [];
  for (const line of text.split(/[\n\0]/)) {
    const trimmed = line.trim();
    const slash = trimmed.indexOf("/");
    if (slash <= 0 || slash === trimmed.length - 1) continue;
    members.push({ fabric: trimmed.slice(0, slash), path: trimmed.slice(slash + 1) });
  }
  return members;
}

/**
 * A key that names one LUN the same way from a member line and from a fabric's configfs
 * directory: fabric names differ in case only ("iSCSI" lists what lives under target/iscsi).
 */
export function memberKey(fabric: string, path: string): string {
  return `${fabric.toLowerCase()}/${path}`;
}

/** Reads every group of a device but default_tg_pt_gp, in name order. */
export async function readAluaGroups(io: ConfigfsIo, deviceDir: string): Promise<AluaGroupReading[]> {
  const groups: AluaGroupReading[] = [];
  for (const name of (await io.listEntries(join(deviceDir, "alua"))).sort()) {
    if (name === ALUA_DEFAULT_GROUP) continue;
    const dir = aluaGroupDir(deviceDir, name);
    const values = await Promise.all(ALUA_GROUP_FILES.map((file) => io.readAttribute(join(dir, file))));
    const texts: AluaGroupTexts = Object.fromEntries(ALUA_GROUP_FILES.map((file, index) => [file, values[index]]));
    // A name that is not a group directory (no id file) is not a group.
    if (texts.tg_pt_gp_id === undefined) continue;
    groups.push(aluaGroupFromTexts(name, texts));
  }
  return groups;
}

/** SCSI protocol identifiers (SPC-4 7.6.1, table 444) of the fabrics a member can be on. */
export const PROTOCOL_IDENTIFIER_FCP = 0x0;
export const PROTOCOL_IDENTIFIER_ISCSI = 0x5;
export const PROTOCOL_IDENTIFIER_SAS = 0x6;

/** tcm_loop presents its LUNs as on a SAS port (naa. WWNs); the other fabrics we do not make. */
export function protocolIdentifierOf(fabric: string): number {
  switch (fabric.toLowerCase()) {
    case "iscsi":
      return PROTOCOL_IDENTIFIER_ISCSI;
    case "loopback":
      return PROTOCOL_IDENTIFIER_SAS;
    default:
      return PROTOCOL_IDENTIFIER_FCP;
  }
}

/**
 * The device's ALUA setup from its groups; undefined when no group (but the kernel's default)
 * has a LUN of the device as a member: ALUA is then off for it.
 */
export function deviceAluaFrom(readings: readonly AluaGroupReading[]): AluaConfig | undefined {
  const groups = readings.filter((group): group is AluaGroupReading & { id: number } => group.id !== undefined).sort((a, b) => a.id - b.id);
  // A TCMU handler is not told which port a command came through, so it reports one group as
  // its own. Several groups with members (exports of this gateway put in different groups):
  // the lowest id, so every attach picks the same one.
  const local = groups.find((group) => group.members.length > 0);
  if (local === undefined) return undefined;
  // Members on several fabrics (a loop and an iSCSI export in one group): the network one,
  // which is what the other gateways' paths are on too.
  const member = local.members.find((entry) => entry.fabric.toLowerCase() !== "loopback") ?? local.members[0]!;
  return {
    // An unreadable state is the kernel's initial one (active/optimized). LBA dependent and
    // offline are never configured here; were someone to set them by hand, unavailable is the
    // nearest state the SCSI layer models (no medium access).
    groups: groups.map((group) => ({ id: group.id, name: group.name, state: aluaStateFromCode(group.stateCode ?? 0) ?? "unavailable", preferred: group.preferred })),
    localGroupId: local.id,
    protocolIdentifier: protocolIdentifierOf(member.fabric),
  };
}

function integerOrUndefined(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const value = Number(text.trim());
  return Number.isInteger(value) ? value : undefined;
}
