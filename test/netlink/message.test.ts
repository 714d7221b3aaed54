import { describe, expect, test } from "bun:test";
import { CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_MCAST_GROUPS, CTRL_ATTR_MCAST_GRP_ID, CTRL_ATTR_MCAST_GRP_NAME, CTRL_CMD_GETFAMILY, CTRL_CMD_NEWFAMILY, decodeFamily, encodeGetFamily, GENL_ID_CTRL } from "../../src/netlink/genl-ctrl.ts";
import {
  align4,
  encodeGenlMessage,
  NetlinkFormatError,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  parseAttributes,
  parseGenl,
  readErrorCode,
  readString,
  readU64,
  splitMessages,
  stringAttribute,
  u32Attribute,
  u64Attribute,
  u8Attribute,
  type Attribute,
} from "../../src/netlink/message.ts";
import * as tcmu from "../../src/netlink/tcmu-genl.ts";

const FAMILY_ID = 0x1c;

/** A multicast as target_core_user.c builds it: genlmsg_put + DEVICE, MINOR, DEVICE_ID (+ change). */
function kernelEvent(command: number, extra: Attribute[] = [], uioName = "tcm-user/8/disk0/appliance/ram"): Uint8Array {
  return encodeGenlMessage({
    familyId: FAMILY_ID,
    command,
    version: tcmu.TCMU_GENL_VERSION,
    flags: 0,
    sequence: 0,
    attributes: [stringAttribute(tcmu.TCMU_ATTR_DEVICE, uioName), u32Attribute(tcmu.TCMU_ATTR_MINOR, 3), u32Attribute(tcmu.TCMU_ATTR_DEVICE_ID, 42), ...extra],
  });
}

function decode(datagram: Uint8Array) {
  const [message] = splitMessages(datagram);
  expect(message!.type).toBe(FAMILY_ID);
  return tcmu.decodeTcmuEvent(parseGenl(message!.payload));
}

describe("netlink framing", () => {
  test("encodeGenlMessage() writes nlmsghdr, genlmsghdr and 4-byte aligned attributes", () => {
    const message = encodeGenlMessage({ familyId: 0x22, command: 7, version: 2, flags: NLM_F_REQUEST | NLM_F_ACK, sequence: 9, attributes: [u8Attribute(9, 1), stringAttribute(1, "ab")] });
    const view = new DataView(message.buffer);
    expect(message.byteLength).toBe(16 + 4 + 8 + 8);
    expect(view.getUint32(0, true)).toBe(message.byteLength);
    expect(view.getUint16(4, true)).toBe(0x22);
    expect(view.getUint16(6, true)).toBe(NLM_F_REQUEST | NLM_F_ACK);
    expect(view.getUint32(8, true)).toBe(9);
    expect([message[16], message[17]]).toEqual([7, 2]);
    // u8 attribute: len 5, type 9, value 1, 3 bytes of padding
    expect(view.getUint16(20, true)).toBe(5);
    expect(view.getUint16(22, true)).toBe(9);
    expect(message[24]).toBe(1);
    // string attribute keeps its NUL: len 4 + 3
    expect(view.getUint16(28, true)).toBe(7);
    expect(readString(parseGenl(message.subarray(16)).attributes.get(1))).toBe("ab");
  });

  test("splitMessages() walks several aligned messages in one datagram", () => {
    const first = encodeGenlMessage({ familyId: 1, command: 1, version: 1, flags: 0, sequence: 1, attributes: [u8Attribute(1, 5)] });
    const second = encodeGenlMessage({ familyId: 2, command: 2, version: 1, flags: 0, sequence: 2, attributes: [] });
    const datagram = new Uint8Array(align4(first.byteLength) + second.byteLength);
    datagram.set(first);
    datagram.set(second, align4(first.byteLength));
    expect(splitMessages(datagram).map((message) => [message.type, message.sequence])).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  test("splitMessages() and parseAttributes() refuse lengths past the buffer", () => {
    const message = encodeGenlMessage({ familyId: 1, command: 1, version: 1, flags: 0, sequence: 1, attributes: [u32Attribute(2, 7)] });
    new DataView(message.buffer).setUint32(0, message.byteLength + 4, true);
    expect(() => splitMessages(message)).toThrow(NetlinkFormatError);
    const attribute = Uint8Array.of(12, 0, 1, 0, 0, 0, 0, 0);
    expect(() => parseAttributes(attribute)).toThrow(NetlinkFormatError);
    expect(() => parseAttributes(Uint8Array.of(2, 0, 1, 0))).toThrow(NetlinkFormatError);
  });

  test("attribute types drop the NESTED and NET_BYTEORDER flag bits", () => {
    const nested = Uint8Array.of(8, 0, 0x07, 0x80, 1, 2, 3, 4);
    expect([...parseAttributes(nested).keys()]).toEqual([7]);
  });

  test("readU64() refuses values that do not fit a number", () => {
    expect(readU64(u64Attribute(5, 1n << 40n).payload)).toBe(2 ** 40);
    expect(() => readU64(u64Attribute(5, 1n << 60n).payload)).toThrow(NetlinkFormatError);
  });

  test("readErrorCode() reads NLMSG_ERROR's negative errno", () => {
    const payload = new Uint8Array(20);
    new DataView(payload.buffer).setInt32(0, -19, true);
    expect(readErrorCode({ type: NLMSG_ERROR, flags: 0, sequence: 1, portId: 0, payload })).toBe(-19);
  });
});

describe("generic netlink controller", () => {
  test("encodeGetFamily() asks nlctrl for a family by name", () => {
    const message = encodeGetFamily("TCM-USER", 5);
    const [parsed] = splitMessages(message);
    expect(parsed!.type).toBe(GENL_ID_CTRL);
    const genl = parseGenl(parsed!.payload);
    expect(genl.command).toBe(CTRL_CMD_GETFAMILY);
    expect(readString(genl.attributes.get(CTRL_ATTR_FAMILY_NAME))).toBe("TCM-USER");
  });

  test("decodeFamily() reads the id and the multicast groups' ids", () => {
    const group = encodeGenlMessage({ familyId: 0, command: 0, version: 0, flags: 0, sequence: 0, attributes: [stringAttribute(CTRL_ATTR_MCAST_GRP_NAME, "config"), u32Attribute(CTRL_ATTR_MCAST_GRP_ID, 11)] }).subarray(20);
    const groupList = encodeGenlMessage({ familyId: 0, command: 0, version: 0, flags: 0, sequence: 0, attributes: [{ type: 1, payload: group }] }).subarray(20);
    const idPayload = new Uint8Array(2);
    new DataView(idPayload.buffer).setUint16(0, 0x1c, true);
    const reply = encodeGenlMessage({
      familyId: GENL_ID_CTRL,
      command: CTRL_CMD_NEWFAMILY,
      version: 2,
      flags: 0,
      sequence: 5,
      attributes: [{ type: CTRL_ATTR_FAMILY_ID, payload: idPayload }, stringAttribute(CTRL_ATTR_FAMILY_NAME, "TCM-USER"), { type: CTRL_ATTR_MCAST_GROUPS | 0x8000, payload: groupList }],
    });
    const family = decodeFamily(splitMessages(reply)[0]!.payload);
    expect(family.id).toBe(0x1c);
    expect(family.name).toBe("TCM-USER");
    expect(family.groups.get("config")).toBe(11);
  });
});

describe("TCM-USER events and replies", () => {
  test("ADDED_DEVICE carries the UIO name, minor and device index", () => {
    expect(decode(kernelEvent(tcmu.TCMU_CMD_ADDED_DEVICE))).toEqual({ kind: "added", uioName: "tcm-user/8/disk0/appliance/ram", minor: 3, deviceId: 42 });
  });

  test("REMOVED_DEVICE decodes to kind removed", () => {
    expect(decode(kernelEvent(tcmu.TCMU_CMD_REMOVED_DEVICE))?.kind).toBe("removed");
  });

  test("RECONFIG_DEVICE decodes each change: DEV_CFG (newline trimmed), DEV_SIZE, WRITECACHE", () => {
    const config = decode(kernelEvent(tcmu.TCMU_CMD_RECONFIG_DEVICE, [stringAttribute(tcmu.TCMU_ATTR_DEV_CFG, "appliance/file//srv/a.img\n")]));
    expect(config).toMatchObject({ kind: "reconfig", change: { kind: "dev_config", devConfig: "appliance/file//srv/a.img" } });
    const size = decode(kernelEvent(tcmu.TCMU_CMD_RECONFIG_DEVICE, [{ type: 3, payload: new Uint8Array(0) }, u64Attribute(tcmu.TCMU_ATTR_DEV_SIZE, 1n << 31n)]));
    expect(size).toMatchObject({ change: { kind: "dev_size", sizeBytes: 2 ** 31 } });
    const cache = decode(kernelEvent(tcmu.TCMU_CMD_RECONFIG_DEVICE, [u8Attribute(tcmu.TCMU_ATTR_WRITECACHE, 1)]));
    expect(cache).toMatchObject({ change: { kind: "write_cache", enabled: true } });
  });

  test("a RECONFIG without a change, or an event without DEVICE_ID, is refused", () => {
    expect(() => decode(kernelEvent(tcmu.TCMU_CMD_RECONFIG_DEVICE))).toThrow(NetlinkFormatError);
    const bare = encodeGenlMessage({ familyId: FAMILY_ID, command: tcmu.TCMU_CMD_ADDED_DEVICE, version: 2, flags: 0, sequence: 0, attributes: [stringAttribute(1, "x")] });
    expect(() => decode(bare)).toThrow(NetlinkFormatError);
  });

  test("commands that are not events (our own *_DONE echoed) decode to undefined", () => {
    expect(decode(kernelEvent(tcmu.TCMU_CMD_ADDED_DEVICE_DONE))).toBeUndefined();
  });

  test("encodeDone() answers with the matching *_DONE command, CMD_STATUS (s32) and DEVICE_ID", () => {
    const event = decode(kernelEvent(tcmu.TCMU_CMD_RECONFIG_DEVICE, [u8Attribute(tcmu.TCMU_ATTR_WRITECACHE, 0)]))!;
    const [message] = splitMessages(tcmu.encodeDone(FAMILY_ID, 77, event, -22));
    expect(message!.flags).toBe(NLM_F_REQUEST | NLM_F_ACK);
    const genl = parseGenl(message!.payload);
    expect(genl.command).toBe(tcmu.TCMU_CMD_RECONFIG_DEVICE_DONE);
    const status = genl.attributes.get(tcmu.TCMU_ATTR_CMD_STATUS)!;
    expect(new DataView(status.buffer, status.byteOffset).getInt32(0, true)).toBe(-22);
    const id = genl.attributes.get(tcmu.TCMU_ATTR_DEVICE_ID)!;
    expect(new DataView(id.buffer, id.byteOffset).getUint32(0, true)).toBe(42);
    for (const [kind, done] of [
      ["added", tcmu.TCMU_CMD_ADDED_DEVICE_DONE],
      ["removed", tcmu.TCMU_CMD_REMOVED_DEVICE_DONE],
    ] as const) {
      const reply = tcmu.encodeDone(FAMILY_ID, 1, { kind, uioName: "", minor: 0, deviceId: 1 }, 0);
      expect(parseGenl(splitMessages(reply)[0]!.payload).command).toBe(done);
    }
  });

  test("encodeSetFeatures() sets SUPP_KERN_CMD_REPLY as a u8", () => {
    for (const on of [true, false]) {
      const genl = parseGenl(splitMessages(tcmu.encodeSetFeatures(FAMILY_ID, 1, on))[0]!.payload);
      expect(genl.command).toBe(tcmu.TCMU_CMD_SET_FEATURES);
      expect([...genl.attributes.get(tcmu.TCMU_ATTR_SUPP_KERN_CMD_REPLY)!]).toEqual([on ? 1 : 0]);
    }
  });
});
