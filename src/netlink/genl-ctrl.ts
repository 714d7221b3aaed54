// The generic netlink controller (family "nlctrl", id 0x10): CTRL_CMD_GETFAMILY turns a family
// name into its numeric id and its multicast groups' ids, which are assigned at module load and
// differ from boot to boot.
import {
  encodeGenlMessage,
  NetlinkFormatError,
  NLM_F_REQUEST,
  parseAttributes,
  parseGenl,
  parseNestedList,
  readString,
  readU16,
  readU32,
  stringAttribute,
} from "./message.ts";

export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;
const CTRL_VERSION = 2;

export interface FamilyInfo {
  id: number;
  name: string;
  version: number;
  /** Multicast group name → id. */
  groups: Map<string, number>;
}

export function encodeGetFamily(name: string, sequence: number): Uint8Array {
  return encodeGenlMessage({
    familyId: GENL_ID_CTRL,
    command: CTRL_CMD_GETFAMILY,
    version: CTRL_VERSION,
    flags: NLM_F_REQUEST,
    sequence,
    attributes: [stringAttribute(CTRL_ATTR_FAMILY_NAME, name)],
  });
}

/** The payload of a CTRL_CMD_NEWFAMILY reply. */
export function decodeFamily(payload: Uint8Array): FamilyInfo {
  const message = parseGenl(payload);
  if (message.command !== CTRL_CMD_NEWFAMILY) throw new NetlinkFormatError(`controller replied with command ${message.command}, not NEWFAMILY`);
  const id = readU16(message.attributes.get(CTRL_ATTR_FAMILY_ID));
  const name = readString(message.attributes.get(CTRL_ATTR_FAMILY_NAME));
  if (id === undefined || name === undefined) throw new NetlinkFormatError("NEWFAMILY reply without family id or name");
  const groups = new Map<string, number>();
  const groupList = message.attributes.get(CTRL_ATTR_MCAST_GROUPS);
  for (const element of groupList === undefined ? [] : parseNestedList(groupList)) {
    const group = parseAttributes(element);
    const groupName = readString(group.get(CTRL_ATTR_MCAST_GRP_NAME));
    const groupId = readU32(group.get(CTRL_ATTR_MCAST_GRP_ID));
    if (groupName !== undefined && groupId !== undefined) groups.set(groupName, groupId);
  }
  return { id, name, version: readU32(message.attributes.get(CTRL_ATTR_VERSION)) ?? 0, groups };
}
