// A configfs stand-in on a temp dir: mkdir of a device or a TPG creates the attribute files and
// default groups the kernel would, rmdir removes an item with its attribute files but refuses
// (ENOTEMPTY) while it still holds items or links someone made, and every operation is logged
// so tests can check the order of writes. ALUA groups refuse what the kernel refuses: any write
// before tg_pt_gp_id, a second id or one another group has, a state before enable, and a LUN
// put in a group without an id or before it is linked; `members` follows the LUNs' groups in
// the kernel's format.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { afterEach, beforeEach } from "bun:test";
import { ConfigfsError, ConfigfsIo } from "../../src/configfs/io.ts";
import type { Provisioner } from "../../src/configfs/provision.ts";
import { StateStore } from "../../src/configfs/state.ts";
import { PROVISIONING_HBA_ID } from "../../src/configfs/user-device.ts";
import type { KernelSetup } from "../../src/configfs/kernel-setup.ts";
import type { SystemRoots } from "../../src/uio/discover.ts";

export class FakeConfigfs extends ConfigfsIo {
  readonly root: string;
  readonly roots: SystemRoots;
  readonly log: string[] = [];
  /** Paths made by mkdir or ln -s (items), as opposed to default groups and attribute files. */
  readonly #made = new Set<string>();
  #nextDeviceIndex = 1;
  /** Writes to a path ending in one of these fail with this errno name. */
  failWrites = new Map<string, string>();

  constructor() {
    super();
    this.root = mkdtempSync(join(tmpdir(), "tcmu-configfs-"));
    this.roots = { sysfs: join(this.root, "sys"), configfs: join(this.root, "config"), dev: join(this.root, "dev") };
    mkdirSync(join(this.roots.configfs, "target", "core"), { recursive: true });
    mkdirSync(join(this.roots.sysfs, "module"), { recursive: true });
  }

  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  rel(path: string): string {
    return relative(this.roots.configfs, path);
  }

  /** LUN directory → the ALUA group directory it was put in (default_tg_pt_gp is not tracked). */
  readonly #lunGroups = new Map<string, string>();

  override async writeAttribute(path: string, value: string | number): Promise<void> {
    this.log.push(`write ${this.rel(path)}=${value}`);
    for (const [suffix, code] of this.failWrites) {
      if (path.endsWith(suffix)) throw new ConfigfsError(`writing "${value}" to ${path} failed: ${code}`, code);
    }
    const parts = this.rel(path).split("/");
    if (parts[1] === "core" && parts[4] === "alua" && parts.length === 7) this.#checkGroupWrite(path, parts[6]!, String(value));
    if (parts[1] !== "core" && parts[4] === "lun" && parts[6] === "alua_tg_pt_gp" && parts.length === 7) {
      this.#assignLun(dirname(path), String(value));
      return;
    }
    await super.writeAttribute(path, value);
  }

  #refuse(path: string, value: string, code: string, why: string): never {
    throw new ConfigfsError(`writing "${value}" to ${path} failed: ${code} (${why})`, code);
  }

  #checkGroupWrite(path: string, attribute: string, value: string): void {
    const group = dirname(path);
    const id = readFileSync(join(group, "tg_pt_gp_id"), "utf8").trim();
    if (attribute === "tg_pt_gp_id") {
      if (id !== "0") this.#refuse(path, value, "EINVAL", "the group already has an id");
      for (const other of readdirSync(dirname(group))) {
        if (join(dirname(group), other) !== group && readFileSync(join(dirname(group), other, "tg_pt_gp_id"), "utf8").trim() === value) this.#refuse(path, value, "EINVAL", `group ${other} has that id`);
      }
      return;
    }
    if (id === "0") this.#refuse(path, value, "EINVAL", "tg_pt_gp_id not written yet");
    if (attribute === "alua_access_state" && readFileSync(join(group, "..", "..", "enable"), "utf8").trim() !== "1") this.#refuse(path, value, "ENODEV", "device not configured");
  }

  #assignLun(lunDir: string, group: string): void {
    const path = join(lunDir, "alua_tg_pt_gp");
    const link = readdirSync(lunDir).find((entry) => entry !== "alua_tg_pt_gp");
    if (link === undefined) this.#refuse(path, group, "ENODEV", "no device linked");
    const device = resolve(lunDir, readlinkSync(join(lunDir, link)));
    const groupDir = join(device, "alua", group);
    if (!existsSync(join(groupDir, "tg_pt_gp_id")) || readFileSync(join(groupDir, "tg_pt_gp_id"), "utf8").trim() === "0") this.#refuse(path, group, "ENODEV", "no such group with an id");
    this.#leaveGroup(lunDir);
    if (group !== "default_tg_pt_gp") this.#lunGroups.set(lunDir, groupDir);
    writeFileSync(path, `TG Port Alias: ${group}\n`);
    this.#writeMembers(groupDir);
  }

  #leaveGroup(lunDir: string): void {
    const groupDir = this.#lunGroups.get(lunDir);
    if (groupDir === undefined) return;
    this.#lunGroups.delete(lunDir);
    if (existsSync(groupDir)) this.#writeMembers(groupDir);
  }

  /** target_tg_pt_gp_members_show(): "<fabric name>/<wwn>/tpgt_<tag>/<lun>\n" and a NUL per LUN. */
  #writeMembers(groupDir: string): void {
    let text = "";
    for (const [lunDir, group] of this.#lunGroups) {
      if (group !== groupDir) continue;
      const [, fabric, wwn, tpg, , lun] = this.rel(lunDir).split("/");
      text += `${fabric === "iscsi" ? "iSCSI" : fabric}/${wwn}/${tpg}/${lun}\n\0`;
    }
    writeFileSync(join(groupDir, "members"), text);
  }

  override async makeDirectory(path: string): Promise<void> {
    const existed = existsSync(path);
    await super.makeDirectory(path);
    if (existed) return;
    this.log.push(`mkdir ${this.rel(path)}`);
    this.#made.add(path);
    this.#populate(path);
  }

  override async makeLink(target: string, path: string): Promise<void> {
    this.log.push(`ln ${this.rel(path)}`);
    await super.makeLink(target, path);
    this.#made.add(path);
  }

  override async removeLink(path: string): Promise<void> {
    this.log.push(`rm ${this.rel(path)}`);
    await super.removeLink(path);
    this.#made.delete(path);
  }

  override async removeDirectory(path: string): Promise<void> {
    if (!existsSync(path)) return;
    for (const made of this.#made) {
      if (made !== path && made.startsWith(`${path}/`)) throw new ConfigfsError(`rmdir ${path} failed: ENOTEMPTY (holds ${this.rel(made)})`, "ENOTEMPTY");
    }
    this.log.push(`rmdir ${this.rel(path)}`);
    this.#leaveGroup(path);
    rmSync(path, { recursive: true, force: true });
    this.#made.delete(path);
  }

  /** What the kernel creates inside a new item. */
  #populate(path: string): void {
    const parts = this.rel(path).split("/");
    const file = (name: string, value: string) => {
      mkdirSync(join(path, name, ".."), { recursive: true });
      writeFileSync(join(path, name), `${value}\n`);
    };
    if (parts[0] === "target" && parts[1] === "core" && parts.length === 4) {
      for (const [name, value] of Object.entries({ hw_block_size: "512", hw_max_sectors: "128", dev_size: "0", emulate_write_cache: "0", cmd_time_out: "30", nl_reply_supported: "0" })) {
        file(`attrib/${name}`, value);
      }
      file("action/block_dev", "unblocked");
      file("statistics/scsi_dev/indx", String(this.#nextDeviceIndex++));
      file("enable", "0");
      file("control", "");
      mkdirSync(join(path, "wwn"));
      this.#populateAluaGroup(join(path, "alua", "default_tg_pt_gp"));
    } else if (parts[0] === "target" && parts[1] === "core" && parts[4] === "alua" && parts.length === 6) {
      this.#populateAluaGroup(path);
    } else if (parts[0] === "target" && parts[1] !== "core" && parts[4] === "lun" && parts.length === 6) {
      file("alua_tg_pt_gp", "TG Port Alias: default_tg_pt_gp");
    } else if (parts[0] === "target" && parts.length === 4 && parts[3]!.startsWith("tpgt_")) {
      for (const group of ["lun", "np", "acls", "attrib", "auth", "param"]) mkdirSync(join(path, group));
      if (parts[1] === "iscsi") file("enable", "0");
      if (parts[1] === "loopback") file("nexus", "");
    } else if (parts[0] === "target" && parts[1] === "iscsi" && parts[4] === "acls" && parts.length === 6) {
      mkdirSync(join(path, "auth"));
    }
  }

  /** core_alua_allocate_tg_pt_gp(): id 0 (not valid yet), active/optimized, no members. */
  #populateAluaGroup(path: string): void {
    mkdirSync(path, { recursive: true });
    const values = { tg_pt_gp_id: "0", alua_access_state: "0", alua_access_type: "3", alua_access_status: "None", preferred: "0", implicit_trans_secs: "0", members: "" };
    for (const [name, value] of Object.entries(values)) writeFileSync(join(path, name), value === "" ? "" : `${value}\n`);
  }
}

/**
 * Records modprobe and mount; a loaded module shows up in sysfs/module like the real thing,
 * unless it is one of `unavailable` (a kernel without it).
 */
export class RecordingSetup implements KernelSetup {
  readonly calls: string[] = [];
  readonly #roots: SystemRoots;
  readonly #unavailable: Set<string>;

  constructor(roots: SystemRoots, unavailable: string[] = []) {
    this.#roots = roots;
    this.#unavailable = new Set(unavailable);
  }

  hint(module: string): string {
    return `hint for ${module}`;
  }

  modprobe(module: string): void {
    this.calls.push(`modprobe ${module}`);
    if (this.#unavailable.has(module)) return;
    mkdirSync(join(this.#roots.sysfs, "module", module), { recursive: true });
    if (module === "target_core_mod") mkdirSync(join(this.#roots.configfs, "target", "core"), { recursive: true });
  }

  mountConfigfs(path: string): void {
    this.calls.push(`mount ${path}`);
    mkdirSync(join(path, "target"), { recursive: true });
  }
}

/** What provisioning tests work on: a fake configfs, a provisioner over it and its run dir. */
export interface ProvisionerFixture {
  fake: FakeConfigfs;
  provisioner: Provisioner;
  runDir: string;
}

/** A fresh fixture before every test of the calling file, disposed after it. */
export function provisionerPerTest(): ProvisionerFixture {
  const fixture = {} as ProvisionerFixture;
  beforeEach(() => {
    fixture.fake = new FakeConfigfs();
    fixture.runDir = mkdtempSync(join(tmpdir(), "tcmu-run-"));
    const roots = fixture.fake.roots;
    fixture.provisioner = { roots, io: fixture.fake, setup: new RecordingSetup(roots), state: new StateStore(fixture.runDir), subtype: "appliance", hbaId: PROVISIONING_HBA_ID, findOtherDaemons: () => [] };
  });
  afterEach(() => {
    fixture.fake.dispose();
    rmSync(fixture.runDir, { recursive: true, force: true });
  });
  return fixture;
}
