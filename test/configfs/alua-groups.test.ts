// ALUA groups and the unit serial in provisioning (configfs writes, their order, the state file,
// removal) and in discovery at attach (groups, members, states, protocol), on the fake configfs.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AluaGroupSpec, DeviceSpec, IscsiExportSpec } from "../../src/appliance-config/spec.ts";
import { deviceAluaFrom, parseAluaMembers, readAluaGroups, setAluaGroupState } from "../../src/configfs/alua-groups.ts";
import { readInventory } from "../../src/configfs/inventory.ts";
import { loopWwn } from "../../src/configfs/loop-export.ts";
import { ensureExports, provisionDevice, unprovisionDevice } from "../../src/configfs/provision.ts";
import { StateStore } from "../../src/configfs/state.ts";
import { PROVISIONING_HBA_ID } from "../../src/configfs/user-device.ts";
import { describeDeviceAsync } from "../../src/serve/discover-async.ts";
import { discoverDevices, parseUioName } from "../../src/uio/discover.ts";
import { provisionerPerTest } from "./fake-configfs.ts";

const fixture = provisionerPerTest();

const IQN = "iqn.2003-01.org.example:d0";
const DEVICE_DIR = `target/core/user_${PROVISIONING_HBA_ID}/d0`;
const ISCSI_TPG = `target/iscsi/${IQN}/tpgt_1`;
const GW_A: AluaGroupSpec = { group: "gw-a", id: 1, state: "active-optimized", preferred: true };
const GW_B: AluaGroupSpec = { group: "gw-b", id: 2, state: "active-non-optimized", preferred: false };
const GW_C: AluaGroupSpec = { group: "gw-c", id: 3, state: "standby", preferred: false };

function spec(exports: DeviceSpec["exports"], extra: Partial<DeviceSpec> = {}): DeviceSpec {
  return { name: "d0", backstore: "ram", sizeBytes: 64 * 1024 ** 2, blockSizeBytes: 512, writeCache: false, hwMaxSectors: 1024, maxDataAreaMb: 64, cmdTimeOutSeconds: 30, exports, aluaPeers: [], ...extra };
}

function iscsi(alua?: AluaGroupSpec): IscsiExportSpec {
  return { fabric: "iscsi", iqn: IQN, portal: "127.0.0.1:3260", initiators: [], allowAnyone: false, chap: { user: "alice", password: "correct-horse-battery" }, ...(alua === undefined ? {} : { alua }) };
}

/** Both exports of this gateway in gw-a, two peers, a shared serial. */
const HA_SPEC = () => spec([{ fabric: "loop", alua: GW_A }, iscsi(GW_A)], { serial: "shared-serial-0001", aluaPeers: [GW_B, GW_C] });

const config = (...parts: string[]) => join(fixture.fake.roots.configfs, ...parts);
const raw = (...parts: string[]) => readFileSync(config(...parts), "utf8");
const at = (entry: string) => {
  const index = fixture.fake.log.indexOf(entry);
  if (index < 0) throw new Error(`not in the log: ${entry}\n${fixture.fake.log.join("\n")}`);
  return index;
};

describe("provisionDevice() with ALUA groups and a serial", () => {
  test("writes the serial before enable, then every group (id first), then the exports with their LUNs in the group", async () => {
    await provisionDevice(fixture.provisioner, HA_SPEC(), "cli");
    // Exactly these writes, in this order, for each group; the id before anything else.
    const groupLog = (group: AluaGroupSpec) => [
      `mkdir ${DEVICE_DIR}/alua/${group.group}`,
      `write ${DEVICE_DIR}/alua/${group.group}/tg_pt_gp_id=${group.id}`,
      `write ${DEVICE_DIR}/alua/${group.group}/alua_access_type=3`,
      `write ${DEVICE_DIR}/alua/${group.group}/implicit_trans_secs=30`,
      `write ${DEVICE_DIR}/alua/${group.group}/preferred=${group.preferred ? 1 : 0}`,
      `write ${DEVICE_DIR}/alua/${group.group}/alua_access_state=${{ "active-optimized": 0, "active-non-optimized": 1, standby: 2, unavailable: 3 }[group.state]}`,
    ];
    const first = at(`mkdir ${DEVICE_DIR}/alua/gw-a`);
    expect(fixture.fake.log.slice(first, first + 18)).toEqual([...groupLog(GW_A), ...groupLog(GW_B), ...groupLog(GW_C)]);

    const serial = at(`write ${DEVICE_DIR}/wwn/vpd_unit_serial=shared-serial-0001`);
    const enable = at(`write ${DEVICE_DIR}/enable=1`);
    expect(serial).toBeLessThan(enable);
    expect(enable).toBeLessThan(first);
    expect(first + 18).toBeLessThan(at(`mkdir target/loopback/${loopWwn("d0")}`));

    const loopLun = `target/loopback/${loopWwn("d0")}/tpgt_1/lun/lun_0`;
    expect(at(`ln ${loopLun}/d0`)).toBeLessThan(at(`write ${loopLun}/alua_tg_pt_gp=gw-a`));
    // iSCSI: in its group before access control, the portal and enable make it reachable.
    const iscsiGroup = at(`write ${ISCSI_TPG}/lun/lun_0/alua_tg_pt_gp=gw-a`);
    expect(at(`ln ${ISCSI_TPG}/lun/lun_0/d0`)).toBeLessThan(iscsiGroup);
    expect(iscsiGroup).toBeLessThan(at(`write ${ISCSI_TPG}/attrib/generate_node_acls=1`));
    expect(iscsiGroup).toBeLessThan(at(`mkdir ${ISCSI_TPG}/np/127.0.0.1:3260`));
    expect(iscsiGroup).toBeLessThan(at(`write ${ISCSI_TPG}/enable=1`));

    // Written as rtslib does, without a trailing newline.
    expect(raw(DEVICE_DIR, "wwn", "vpd_unit_serial")).toBe("shared-serial-0001");
    expect(raw(DEVICE_DIR, "alua", "gw-b", "alua_access_state")).toBe("1");
    expect(raw(DEVICE_DIR, "alua", "gw-a", "tg_pt_gp_id")).toBe("1");
    expect(raw(DEVICE_DIR, "alua", "gw-a", "members")).toBe(`loopback/${loopWwn("d0")}/tpgt_1/lun_0\n\0iSCSI/${IQN}/tpgt_1/lun_0\n\0`);
    expect(fixture.fake.log.some((entry) => entry.includes("default_tg_pt_gp"))).toBe(false);
  });

  test("records the groups and each export's group in the state file", async () => {
    const record = await provisionDevice(fixture.provisioner, HA_SPEC(), "config");
    const saved = new StateStore(fixture.runDir).read().devices.d0!;
    expect(saved.aluaGroups).toEqual(["gw-a", "gw-b", "gw-c"]);
    expect(saved.serial).toBe("shared-serial-0001");
    expect(saved.exports).toEqual([
      { fabric: "loop", wwn: loopWwn("d0"), aluaGroup: "gw-a" },
      { fabric: "iscsi", iqn: IQN, portal: "127.0.0.1:3260", access: "chap", aluaGroup: "gw-a" },
    ]);
    expect(record.aluaGroups).toEqual(saved.aluaGroups!);
  });

  test("a device without ALUA makes no groups and writes no serial", async () => {
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop" }]), "cli");
    expect(fixture.fake.log.some((entry) => entry.includes("/alua") || entry.includes("vpd_unit_serial"))).toBe(false);
    expect(new StateStore(fixture.runDir).read().devices.d0!.aluaGroups).toBeUndefined();
  });

  test("a group write the kernel refuses rolls back the groups made so far, the device and its record", async () => {
    fixture.fake.failWrites.set("/alua/gw-b/alua_access_state", "EINVAL");
    await expect(provisionDevice(fixture.provisioner, HA_SPEC(), "cli")).rejects.toThrow(/gw-b\/alua_access_state failed: EINVAL/);
    expect(existsSync(config(DEVICE_DIR))).toBe(false);
    expect(fixture.provisioner.state.read().devices).toEqual({});
  });

  test("setAluaGroupState() writes the state's code to the group's alua_access_state", async () => {
    await provisionDevice(fixture.provisioner, HA_SPEC(), "cli");
    await setAluaGroupState(fixture.fake, config(DEVICE_DIR), "gw-a", "standby");
    expect(raw(DEVICE_DIR, "alua", "gw-a", "alua_access_state")).toBe("2");
    await setAluaGroupState(fixture.fake, config(DEVICE_DIR), "gw-b", "unavailable");
    expect(raw(DEVICE_DIR, "alua", "gw-b", "alua_access_state")).toBe("3");
  });

  test("ensureExports() makes missing groups and puts a recreated export's LUN back in its group", async () => {
    const device = HA_SPEC();
    const record = await provisionDevice(fixture.provisioner, device, "config");
    rmSync(config("target", "loopback", loopWwn("d0")), { recursive: true });
    expect(await ensureExports(fixture.provisioner, record, device)).toBe(1);
    expect(raw("target", "loopback", loopWwn("d0"), "tpgt_1", "lun", "lun_0", "alua_tg_pt_gp")).toContain("gw-a");
    const withPeer = { ...device, aluaPeers: [...device.aluaPeers, { group: "gw-d", id: 4, state: "standby" as const, preferred: false }] };
    expect(await ensureExports(fixture.provisioner, record, withPeer)).toBe(0);
    expect(raw(DEVICE_DIR, "alua", "gw-d", "tg_pt_gp_id")).toBe("4");
    expect(new StateStore(fixture.runDir).read().devices.d0!.aluaGroups).toEqual(["gw-a", "gw-b", "gw-c", "gw-d"]);
  });
});

describe("unprovisionDevice() with ALUA groups", () => {
  test("removes the groups after the exports' LUNs and before the device, and forgets them", async () => {
    await provisionDevice(fixture.provisioner, HA_SPEC(), "cli");
    fixture.fake.log.length = 0;
    await unprovisionDevice(fixture.provisioner, "d0");
    const groups = ["gw-c", "gw-b", "gw-a"].map((group) => at(`rmdir ${DEVICE_DIR}/alua/${group}`));
    expect(groups).toEqual([...groups].sort((a, b) => a - b));
    expect(at(`rmdir target/loopback/${loopWwn("d0")}/tpgt_1/lun/lun_0`)).toBeLessThan(groups[0]!);
    expect(at(`rmdir ${ISCSI_TPG}/lun/lun_0`)).toBeLessThan(groups[0]!);
    expect(groups[2]!).toBeLessThan(at(`rmdir ${DEVICE_DIR}`));
    expect(fixture.fake.log.some((entry) => entry.includes("default_tg_pt_gp"))).toBe(false);
    expect(existsSync(config(DEVICE_DIR))).toBe(false);
    expect(fixture.provisioner.state.read().devices).toEqual({});
  });

  test("a group nobody recorded keeps the device (configfs says ENOTEMPTY) and the message says why", async () => {
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop", alua: GW_A }]), "cli");
    await fixture.fake.makeDirectory(config(DEVICE_DIR, "alua", "foreign"));
    await expect(unprovisionDevice(fixture.provisioner, "d0")).rejects.toThrow(/ENOTEMPTY.*ALUA groups .* tcmu-appliance did not create/);
    expect(existsSync(config(DEVICE_DIR, "alua", "foreign"))).toBe(true);
    expect(existsSync(config(DEVICE_DIR, "alua", "gw-a"))).toBe(false);
  });
});

describe("discovery reads the ALUA groups at attach", () => {
  function fakeUio(): { uio: string; name: string } {
    const name = `tcm-user/${PROVISIONING_HBA_ID}/d0/appliance/ram`;
    const dir = join(fixture.fake.roots.sysfs, "class", "uio", "uio3");
    mkdirSync(join(dir, "maps", "map0"), { recursive: true });
    writeFileSync(join(dir, "name"), `${name}\n`);
    writeFileSync(join(dir, "maps", "map0", "size"), "0x4800000\n");
    return { uio: "uio3", name };
  }

  async function discovered() {
    const { uio, name } = fakeUio();
    const viaThreads = await describeDeviceAsync(uio, parseUioName(name)!, fixture.fake.roots, fixture.fake);
    const [viaSync] = discoverDevices("appliance", fixture.fake.roots);
    expect(viaSync!.alua).toEqual(viaThreads!.alua!);
    return viaThreads!;
  }

  test("every group by id with state and preferred bit; the local one has members; iSCSI is protocol 5", async () => {
    await provisionDevice(fixture.provisioner, HA_SPEC(), "cli");
    const device = await discovered();
    expect(device.alua).toEqual({
      groups: [
        { id: 1, name: "gw-a", state: "active-optimized", preferred: true },
        { id: 2, name: "gw-b", state: "active-non-optimized", preferred: false },
        { id: 3, name: "gw-c", state: "standby", preferred: false },
      ],
      localGroupId: 1,
      protocolIdentifier: 0x5,
    });
    expect(device.attributes.unitSerial).toBe("shared-serial-0001");
  });

  test("a loop-only gateway reports SAS (6); a state in transition (0x0f) reads as transitioning", async () => {
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop", alua: { ...GW_B, state: "active-optimized" } }], { aluaPeers: [{ ...GW_A, preferred: false }] }), "cli");
    writeFileSync(config(DEVICE_DIR, "alua", "gw-a", "alua_access_state"), "15\n");
    const device = await discovered();
    expect(device.alua).toEqual({
      groups: [
        { id: 1, name: "gw-a", state: "transitioning", preferred: false },
        { id: 2, name: "gw-b", state: "active-optimized", preferred: false },
      ],
      localGroupId: 2,
      protocolIdentifier: 0x6,
    });
  });

  test("no ALUA when no group but default_tg_pt_gp has a LUN of the device", async () => {
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop" }]), "cli");
    expect((await discovered()).alua).toBeUndefined();
    // Groups without members (the exports gone) are no gateway's own port either.
    await unprovisionDevice(fixture.provisioner, "d0");
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop", alua: GW_A }]), "cli");
    rmSync(join(fixture.fake.roots.sysfs, "class"), { recursive: true });
    writeFileSync(config(DEVICE_DIR, "alua", "gw-a", "members"), "");
    expect((await discovered()).alua).toBeUndefined();
  });

  test("with members in several groups, the lowest id is the local group", () => {
    const member = (fabric: string) => [{ fabric, path: "x/tpgt_1/lun_0" }];
    const alua = deviceAluaFrom([
      { name: "gw-z", id: 9, stateCode: 0, preferred: false, members: member("iSCSI") },
      { name: "gw-y", id: 4, stateCode: 1, preferred: false, members: member("loopback") },
      { name: "half-made", id: undefined, stateCode: 0, preferred: false, members: [] },
    ]);
    expect(alua).toEqual({
      groups: [
        { id: 4, name: "gw-y", state: "active-non-optimized", preferred: false },
        { id: 9, name: "gw-z", state: "active-optimized", preferred: false },
      ],
      localGroupId: 4,
      protocolIdentifier: 0x6,
    });
  });

  test("parseAluaMembers() reads the kernel's lines (each ended by a newline and a NUL), skipping junk", () => {
    expect(parseAluaMembers(`iSCSI/${IQN}/tpgt_1/lun_0\n\0loopback/naa.5001405012345678/tpgt_1/lun_3\n\0\n`)).toEqual([
      { fabric: "iSCSI", path: `${IQN}/tpgt_1/lun_0` },
      { fabric: "loopback", path: "naa.5001405012345678/tpgt_1/lun_3" },
    ]);
    expect(parseAluaMembers("")).toEqual([]);
    expect(parseAluaMembers("/x\nnoslash\nfc/\n")).toEqual([]);
    // A line the kernel's 256-byte buffer cut short still names its fabric.
    expect(parseAluaMembers(`iSCSI/iqn.2003-01.org.${"x".repeat(240)}`)[0]!.fabric).toBe("iSCSI");
  });

  test("readAluaGroups() passes over default_tg_pt_gp and names without a group's files", async () => {
    await provisionDevice(fixture.provisioner, spec([{ fabric: "loop", alua: GW_A }]), "cli");
    mkdirSync(config(DEVICE_DIR, "alua", "not-a-group"), { recursive: true });
    expect((await readAluaGroups(fixture.fake, config(DEVICE_DIR))).map((group) => group.name)).toEqual(["gw-a"]);
  });
});

test("readInventory() shows each export's ALUA group and state, and every group of the device", async () => {
  await provisionDevice(fixture.provisioner, HA_SPEC(), "cli");
  await setAluaGroupState(fixture.fake, config(DEVICE_DIR), "gw-a", "active-non-optimized");
  const [entry] = await readInventory(fixture.fake.roots, fixture.fake);
  expect(entry!.exports).toEqual([`loop ${loopWwn("d0")} lun 0 [gw-a id 1 active-non-optimized, preferred]`, `iscsi ${IQN} lun 0 [gw-a id 1 active-non-optimized, preferred]`]);
  expect(entry!.aluaGroups).toEqual([
    { name: "gw-a", id: 1, state: "active-non-optimized", preferred: true, members: [`loopback/${loopWwn("d0")}/tpgt_1/lun_0`, `iSCSI/${IQN}/tpgt_1/lun_0`] },
    { name: "gw-b", id: 2, state: "active-non-optimized", preferred: false, members: [] },
    { name: "gw-c", id: 3, state: "standby", preferred: false, members: [] },
  ]);
});
