import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceSpec, IscsiExportSpec } from "../../src/appliance-config/spec.ts";
import { readInventory } from "../../src/configfs/inventory.ts";
import { ensureFabric, ensureTargetCore } from "../../src/configfs/kernel-setup.ts";
import { loopWwn } from "../../src/configfs/loop-export.ts";
import { ensureExports, OwnershipError, provisionDevice, unprovisionDevice } from "../../src/configfs/provision.ts";
import { StateStore } from "../../src/configfs/state.ts";
import { controlLine, PROVISIONING_HBA_ID } from "../../src/configfs/user-device.ts";
import { provisionerPerTest, RecordingSetup } from "./fake-configfs.ts";

const fixture = provisionerPerTest();

const CHAP = { user: "alice", password: "correct-horse-battery" };

function spec(name: string, exports: DeviceSpec["exports"] = []): DeviceSpec {
  return { name, backstore: "ram", sizeBytes: 64 * 1024 ** 2, blockSizeBytes: 512, writeCache: false, hwMaxSectors: 1024, maxDataAreaMb: 64, cmdTimeOutSeconds: 30, exports, aluaPeers: [] };
}

function iscsi(overrides: Partial<IscsiExportSpec>): IscsiExportSpec {
  return { fabric: "iscsi", iqn: "iqn.2003-01.org.example:d0", portal: "127.0.0.1:3260", initiators: [], allowAnyone: false, ...overrides };
}

const config = (...parts: string[]) => join(fixture.fake.roots.configfs, ...parts);
const read = (...parts: string[]) => readFileSync(config(...parts), "utf8").trim();

describe("provisionDevice()", () => {
  test("creates the TCMU device: control before attributes, cmd_time_out before enable", async () => {
    await provisionDevice(fixture.provisioner, { ...spec("d0"), writeCache: true }, "cli");
    const dir = `target/core/user_${PROVISIONING_HBA_ID}/d0`;
    expect(read(dir, "control")).toBe("dev_config=appliance/ram,dev_size=67108864,hw_block_size=512,hw_max_sectors=1024,max_data_area_mb=64");
    expect(read(dir, "attrib", "cmd_time_out")).toBe("30");
    expect(read(dir, "attrib", "emulate_write_cache")).toBe("1");
    expect(read(dir, "enable")).toBe("1");
    const writes = fixture.fake.log.filter((entry) => entry.startsWith("write"));
    expect(writes.map((entry) => entry.split("=")[0]!.split("/").slice(-2).join("/"))).toEqual(["d0/control", "attrib/cmd_time_out", "attrib/emulate_write_cache", "d0/enable"]);
  });

  test("controlLine() keeps dev_config first and writes nl_reply_supported only to opt out", () => {
    expect(controlLine("appliance", { ...spec("x"), backstore: "file//srv/x.img;direct", blockSizeBytes: 4096, hwMaxSectors: 128 })).toBe(
      "dev_config=appliance/file//srv/x.img;direct,dev_size=67108864,hw_block_size=4096,hw_max_sectors=128,max_data_area_mb=64",
    );
    expect(controlLine("appliance", spec("x"), true)).toEndWith(",nl_reply_supported=-1");
  });

  test("with tcmu-runner running, the device opts out of netlink replies before enable, and the state says why", async () => {
    fixture.provisioner.findOtherDaemons = () => [{ name: "tcmu-runner", pid: 4242 }];
    const record = await provisionDevice(fixture.provisioner, spec("d0"), "cli");
    expect(read(`target/core/user_${PROVISIONING_HBA_ID}/d0`, "control")).toContain("nl_reply_supported=-1");
    expect(record.repliesOptedOutFor).toBe("tcmu-runner (pid 4242)");
    expect(new StateStore(fixture.runDir).read().devices.d0!.repliesOptedOutFor).toBe("tcmu-runner (pid 4242)");
  });

  test("a loop export sets the nexus before linking the LUN", async () => {
    await provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }]), "cli");
    const tpg = `target/loopback/${loopWwn("d0")}/tpgt_1`;
    expect(read(tpg, "nexus")).toBe(loopWwn("d0", true));
    expect(readlinkSync(config(tpg, "lun", "lun_0", "d0"))).toBe(config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d0"));
    const nexus = fixture.fake.log.indexOf(`write ${tpg}/nexus=${loopWwn("d0", true)}`);
    expect(nexus).toBeGreaterThan(-1);
    expect(nexus).toBeLessThan(fixture.fake.log.indexOf(`ln ${tpg}/lun/lun_0/d0`));
    expect(loopWwn("d0")).toMatch(/^naa\.50014050[0-9a-f]{8}$/);
  });

  test("iSCSI with CHAP only: dynamic ACLs, TPG-wide credentials, writable; access set before the portal and enable", async () => {
    await provisionDevice(fixture.provisioner, spec("d0", [iscsi({ chap: CHAP, mutualChap: { user: "target", password: "target-secret-123" } })]), "cli");
    const tpg = "target/iscsi/iqn.2003-01.org.example:d0/tpgt_1";
    expect(read(tpg, "attrib", "generate_node_acls")).toBe("1");
    expect(read(tpg, "attrib", "demo_mode_write_protect")).toBe("0");
    expect(read(tpg, "attrib", "authentication")).toBe("1");
    // No trailing newline: the kernel keeps every byte of an auth attribute.
    expect(readFileSync(config(tpg, "auth", "userid"), "utf8")).toBe("alice");
    expect(readFileSync(config(tpg, "auth", "password"), "utf8")).toBe("correct-horse-battery");
    expect(read(tpg, "auth", "userid_mutual")).toBe("target");
    expect(read(tpg, "enable")).toBe("1");
    expect(existsSync(config(tpg, "np", "127.0.0.1:3260"))).toBe(true);
    const authentication = fixture.fake.log.indexOf(`write ${tpg}/attrib/authentication=1`);
    const portal = fixture.fake.log.indexOf(`mkdir ${tpg}/np/127.0.0.1:3260`);
    const enable = fixture.fake.log.indexOf(`write ${tpg}/enable=1`);
    expect(authentication).toBeGreaterThan(-1);
    expect(authentication).toBeLessThan(portal);
    expect(portal).toBeLessThan(enable);
  });

  test("iSCSI with initiators: explicit ACLs with the LUN mapped and per-ACL CHAP", async () => {
    const initiator = "iqn.1993-08.org.debian:01:client";
    await provisionDevice(fixture.provisioner, spec("d0", [iscsi({ initiators: [initiator], chap: CHAP })]), "cli");
    const tpg = "target/iscsi/iqn.2003-01.org.example:d0/tpgt_1";
    expect(read(tpg, "attrib", "generate_node_acls")).toBe("0");
    expect(read(tpg, "attrib", "authentication")).toBe("1");
    expect(read(tpg, "acls", initiator, "auth", "userid")).toBe("alice");
    expect(readlinkSync(config(tpg, "acls", initiator, "lun_0", "lun_0"))).toBe(config(tpg, "lun", "lun_0"));
    expect(existsSync(config(tpg, "auth", "userid"))).toBe(false);
  });

  test("iSCSI open to anyone only with allowAnyone, and then without authentication", async () => {
    await provisionDevice(fixture.provisioner, spec("d0", [iscsi({ allowAnyone: true })]), "cli");
    const tpg = "target/iscsi/iqn.2003-01.org.example:d0/tpgt_1";
    expect(read(tpg, "attrib", "authentication")).toBe("0");
    expect(read(tpg, "attrib", "demo_mode_write_protect")).toBe("0");
    await unprovisionDevice(fixture.provisioner, "d0");
    await expect(provisionDevice(fixture.provisioner, spec("d1", [iscsi({ iqn: "iqn.2003-01.org.example:d1" })]), "cli")).rejects.toThrow(/needs allowAnyone/);
    expect(existsSync(config("target", "iscsi", "iqn.2003-01.org.example:d1"))).toBe(false);
    expect(fixture.provisioner.state.read().devices.d1).toBeUndefined();
  });

  test("records ownership, with exports, in the state file", async () => {
    await provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }, iscsi({ chap: CHAP })]), "config");
    const record = new StateStore(fixture.runDir).read().devices.d0!;
    expect(record).toMatchObject({ name: "d0", hbaId: PROVISIONING_HBA_ID, backstore: "ram", source: "config" });
    expect(record.exports).toEqual([
      { fabric: "loop", wwn: loopWwn("d0") },
      { fabric: "iscsi", iqn: "iqn.2003-01.org.example:d0", portal: "127.0.0.1:3260", access: "chap" },
    ]);
    expect(readFileSync(join(fixture.runDir, "state.json"), "utf8")).not.toContain("correct-horse-battery");
  });

  test("never touches a configfs device it did not create", async () => {
    const foreign = config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d0");
    mkdirSync(join(foreign, "attrib"), { recursive: true });
    writeFileSync(join(foreign, "enable"), "1\n");
    await expect(provisionDevice(fixture.provisioner, spec("d0"), "cli")).rejects.toBeInstanceOf(OwnershipError);
    await expect(unprovisionDevice(fixture.provisioner, "d0")).rejects.toThrow(/not created by tcmu-appliance/);
    expect(existsSync(foreign)).toBe(true);
    expect(fixture.fake.log.filter((entry) => !entry.startsWith("mkdir"))).toEqual([]);
  });

  test("a failed enable (serve refused the device) removes the device and its record", async () => {
    fixture.fake.failWrites.set("/d0/enable", "EINVAL");
    await expect(provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }]), "cli")).rejects.toThrow(/enable failed: EINVAL/);
    expect(existsSync(config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d0"))).toBe(false);
    expect(fixture.provisioner.state.read().devices).toEqual({});
  });

  test("a failed export rolls back the exports made before it and the device", async () => {
    fixture.fake.failWrites.set("/attrib/authentication", "EINVAL");
    await expect(provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }, iscsi({ chap: CHAP })]), "cli")).rejects.toThrow(/authentication/);
    expect(existsSync(config("target", "loopback", loopWwn("d0")))).toBe(false);
    expect(existsSync(config("target", "iscsi", "iqn.2003-01.org.example:d0"))).toBe(false);
    expect(existsSync(config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d0"))).toBe(false);
  });
});

describe("unprovisionDevice()", () => {
  test("removes exports (LUN links, nexus, portals, ACLs) before the device, then forgets it", async () => {
    const initiator = "iqn.1993-08.org.debian:01:client";
    await provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }, iscsi({ initiators: [initiator] })]), "cli");
    fixture.fake.log.length = 0;
    await unprovisionDevice(fixture.provisioner, "d0");
    const deviceRemoved = fixture.fake.log.indexOf(`rmdir target/core/user_${PROVISIONING_HBA_ID}/d0`);
    expect(deviceRemoved).toBe(fixture.fake.log.length - 2);
    expect(fixture.fake.log).toContain(`write target/loopback/${loopWwn("d0")}/tpgt_1/nexus=NULL`);
    expect(fixture.fake.log).toContain("write target/iscsi/iqn.2003-01.org.example:d0/tpgt_1/enable=0");
    expect(existsSync(config("target", "iscsi", "iqn.2003-01.org.example:d0"))).toBe(false);
    expect(existsSync(config("target", "core", `user_${PROVISIONING_HBA_ID}`))).toBe(false);
    expect(fixture.provisioner.state.read().devices).toEqual({});
  });

  test("keeps the HBA while other devices use it", async () => {
    await provisionDevice(fixture.provisioner, spec("d0"), "cli");
    await provisionDevice(fixture.provisioner, spec("d1"), "cli");
    await unprovisionDevice(fixture.provisioner, "d0");
    expect(existsSync(config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d1"))).toBe(true);
  });

  test("names a device nobody created", async () => {
    await expect(unprovisionDevice(fixture.provisioner, "ghost")).rejects.toThrow("no device named ghost was created by tcmu-appliance");
  });
});

test("ensureExports() recreates only the exports that are gone", async () => {
  const device = spec("d0", [{ fabric: "loop" }, iscsi({ chap: CHAP })]);
  const record = await provisionDevice(fixture.provisioner, device, "config");
  expect(await ensureExports(fixture.provisioner, record, device)).toBe(0);
  rmSync(config("target", "loopback", loopWwn("d0")), { recursive: true });
  expect(await ensureExports(fixture.provisioner, record, device)).toBe(1);
  expect(existsSync(config("target", "loopback", loopWwn("d0"), "tpgt_1", "lun", "lun_0", "d0"))).toBe(true);
});

test("readInventory() lists every TCMU device with its exports and UIO", async () => {
  await provisionDevice(fixture.provisioner, spec("d0", [{ fabric: "loop" }]), "cli");
  const uio = join(fixture.fake.roots.sysfs, "class", "uio", "uio4");
  mkdirSync(uio, { recursive: true });
  writeFileSync(join(uio, "name"), `tcm-user/${PROVISIONING_HBA_ID}/d0/appliance/ram\n`);
  writeFileSync(config("target", "core", `user_${PROVISIONING_HBA_ID}`, "d0", "attrib", "dev_size"), "67108864\n");
  const [entry] = await readInventory(fixture.fake.roots, fixture.fake);
  expect(entry).toMatchObject({ name: "d0", hbaId: PROVISIONING_HBA_ID, enabled: true, devConfig: "appliance/ram", sizeBytes: 67108864, uio: "uio4", blocked: false });
  expect(entry!.exports).toEqual([`loop ${loopWwn("d0")} lun 0`]);
});

describe("kernel setup", () => {
  test("ensureTargetCore() loads modules and mounts configfs only when missing", async () => {
    rmSync(join(fixture.fake.roots.configfs, "target"), { recursive: true });
    const setup = new RecordingSetup(fixture.fake.roots);
    await ensureTargetCore(fixture.fake.roots, fixture.fake, setup);
    expect(setup.calls).toEqual([`modprobe configfs`, `mount ${fixture.fake.roots.configfs}`, "modprobe target_core_mod", "modprobe target_core_user"]);
    setup.calls.length = 0;
    await ensureTargetCore(fixture.fake.roots, fixture.fake, setup);
    expect(setup.calls).toEqual([]);
  });

  test("a kernel without target_core_user is refused with what to install, not a bare mkdir error", async () => {
    rmSync(join(fixture.fake.roots.sysfs, "module", "target_core_user"), { recursive: true, force: true });
    const setup = new RecordingSetup(fixture.fake.roots, ["target_core_user"]);
    await expect(ensureTargetCore(fixture.fake.roots, fixture.fake, setup)).rejects.toThrow("no TCMU support: hint for target_core_user");
  });

  test("ensureFabric() loads the fabric module and creates its directory once", async () => {
    const setup = new RecordingSetup(fixture.fake.roots);
    await ensureFabric(fixture.fake.roots, fixture.fake, setup, "iscsi");
    await ensureFabric(fixture.fake.roots, fixture.fake, setup, "iscsi");
    expect(setup.calls).toEqual(["modprobe iscsi_target_mod"]);
    expect(existsSync(config("target", "iscsi"))).toBe(true);
  });
});
