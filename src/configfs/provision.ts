// Creating and removing whole devices (backstore + exports) the way `create`, `remove` and
// serve's config reconciliation need it. The state file is written before each configfs object
// is made and pruned after it is gone, so a crash in between leaves a record of something that
// may not exist (remove skips what is missing) rather than an object nobody owns.
import { join } from "node:path";
import { aluaGroupsOf, type AluaGroupSpec, type DeviceSpec, type ExportSpec } from "../appliance-config/spec.ts";
import { configfsDeviceDir, type SystemRoots } from "../uio/discover.ts";
import { aluaGroupDir, createAluaGroups, removeAluaGroups } from "./alua-groups.ts";
import { ConfigfsError, type ConfigfsIo } from "./io.ts";
import { createIscsiExport, removeIscsiExport } from "./iscsi-export.ts";
import { ensureTargetCore, type KernelSetup } from "./kernel-setup.ts";
import { createLoopExport, removeLoopExport } from "./loop-export.ts";
import { describeDaemons, type OtherDaemon } from "./other-daemons.ts";
import type { DeviceRecord, ExportRecord, StateStore } from "./state.ts";
import { createUserDevice, removeUserDevice, userDeviceDir } from "./user-device.ts";

export interface Provisioner {
  roots: SystemRoots;
  io: ConfigfsIo;
  setup: KernelSetup;
  state: StateStore;
  subtype: string;
  hbaId: number;
  findOtherDaemons?: () => OtherDaemon[];
}

/** Refusals that are about ownership, not the kernel: the message says what to do instead. */
export class OwnershipError extends Error {
  readonly code = "E_NOT_OURS";
}

export function deviceDir(provisioner: Provisioner, name: string): string {
  return userDeviceDir(provisioner, name);
}

/** Creates the device and its exports; on any failure removes what it made and throws. */
export async function provisionDevice(provisioner: Provisioner, spec: DeviceSpec, source: DeviceRecord["source"]): Promise<DeviceRecord> {
  const { io, state } = provisioner;
  await ensureTargetCore(provisioner.roots, io, provisioner.setup);
  const dir = deviceDir(provisioner, spec.name);
  const known = state.read().devices[spec.name];
  if (await io.exists(dir)) {
    throw known === undefined
      ? new OwnershipError(`${dir} exists and was not created by tcmu-appliance: left alone (choose another name)`)
      : new OwnershipError(`device ${spec.name} already exists (created by tcmu-appliance ${known.createdAt})`);
  }
  const record: DeviceRecord = {
    name: spec.name,
    hbaId: provisioner.hbaId,
    subtype: provisioner.subtype,
    backstore: spec.backstore,
    sizeBytes: spec.sizeBytes,
    blockSizeBytes: spec.blockSizeBytes,
    source,
    exports: [],
    ...(spec.serial === undefined ? {} : { serial: spec.serial }),
    createdAt: new Date().toISOString(),
  };
  state.record(record);
  try {
    const created = await createUserDevice(provisioner, spec);
    if (created.optedOutFor.length > 0) {
      record.repliesOptedOutFor = describeDaemons(created.optedOutFor);
      state.record(record);
    }
    // After enable (the kernel sets a group's state only on a configured device), before the
    // exports whose LUNs go in them.
    await addAluaGroups(provisioner, record, aluaGroupsOf(spec));
    for (const exportSpec of spec.exports) await addExport(provisioner, record, exportSpec);
  } catch (error) {
    await unprovisionDevice(provisioner, spec.name).catch(() => {});
    throw error;
  }
  return record;
}

/** Creates the exports of `spec` that `record` lacks (config reconciliation). Returns how many. */
export async function ensureExports(provisioner: Provisioner, record: DeviceRecord, spec: DeviceSpec): Promise<number> {
  const dir = configfsDeviceDir(provisioner.roots, record.hbaId, record.name);
  const missingGroups: AluaGroupSpec[] = [];
  for (const group of aluaGroupsOf(spec)) if (!(await provisioner.io.exists(aluaGroupDir(dir, group.group)))) missingGroups.push(group);
  await addAluaGroups(provisioner, record, missingGroups);
  let created = 0;
  for (const exportSpec of spec.exports) {
    const existing = record.exports.find((made) => sameExport(made, exportSpec));
    if (existing !== undefined && (await exportExists(provisioner, existing))) continue;
    record.exports = record.exports.filter((made) => !sameExport(made, exportSpec));
    await addExport(provisioner, record, exportSpec);
    created += 1;
  }
  return created;
}

function sameExport(record: ExportRecord, spec: ExportSpec): boolean {
  if (record.fabric === "loop" || spec.fabric === "loop") return record.fabric === spec.fabric;
  return record.iqn === spec.iqn;
}

function exportExists(provisioner: Provisioner, record: ExportRecord): Promise<boolean> {
  const fabricDir = record.fabric === "loop" ? join("loopback", record.wwn) : join("iscsi", record.iqn);
  return provisioner.io.exists(join(provisioner.roots.configfs, "target", fabricDir));
}

/** Records the groups, then makes them (a crash in between leaves a record, not an orphan). */
async function addAluaGroups(provisioner: Provisioner, record: DeviceRecord, groups: readonly AluaGroupSpec[]): Promise<void> {
  if (groups.length === 0) return;
  record.aluaGroups = [...new Set([...(record.aluaGroups ?? []), ...groups.map((group) => group.group)])];
  provisioner.state.update((current) => {
    if (current.devices[record.name] !== undefined) current.devices[record.name]!.aluaGroups = record.aluaGroups;
  });
  await createAluaGroups(provisioner.io, configfsDeviceDir(provisioner.roots, record.hbaId, record.name), groups);
}

async function addExport(provisioner: Provisioner, record: DeviceRecord, spec: ExportSpec): Promise<void> {
  const { roots, io, setup, state } = provisioner;
  const dir = deviceDir(provisioner, record.name);
  const made =
    spec.fabric === "loop" ? await createLoopExport(roots, io, setup, dir, record.name, spec.alua?.group) : await createIscsiExport(roots, io, setup, dir, record.name, spec);
  record.exports.push(made);
  state.update((current) => {
    if (current.devices[record.name] !== undefined) current.devices[record.name]!.exports = record.exports;
  });
}

/** Removes a device tcmu-appliance created: exports first, then its ALUA groups, then the backstore, then the record. */
export async function unprovisionDevice(provisioner: Provisioner, name: string): Promise<DeviceRecord> {
  const { roots, io, state } = provisioner;
  const record = state.read().devices[name];
  if (record === undefined) {
    const dir = deviceDir(provisioner, name);
    throw new OwnershipError(
      (await io.exists(dir)) ? `${dir} was not created by tcmu-appliance: not removed (use targetcli or rmdir)` : `no device named ${name} was created by tcmu-appliance`,
    );
  }
  for (const made of [...record.exports].reverse()) {
    if (made.fabric === "loop") await removeLoopExport(roots, io, made);
    else await removeIscsiExport(roots, io, made);
    record.exports = record.exports.filter((entry) => entry !== made);
    state.update((current) => {
      if (current.devices[name] !== undefined) current.devices[name]!.exports = record.exports;
    });
  }
  // The groups after the LUNs that were their members, before the device: configfs refuses to
  // remove a device that still holds groups someone made (ENOTEMPTY).
  const dir = configfsDeviceDir(roots, record.hbaId, name);
  await removeAluaGroups(io, dir, record.aluaGroups ?? []);
  if (record.aluaGroups !== undefined) {
    delete record.aluaGroups;
    state.update((current) => {
      if (current.devices[name] !== undefined) delete current.devices[name]!.aluaGroups;
    });
  }
  try {
    await removeUserDevice({ ...provisioner, hbaId: record.hbaId }, name);
  } catch (error) {
    if (error instanceof ConfigfsError && error.code === "EBUSY") {
      throw new ConfigfsError(`${error.message}: the device is still exported somewhere tcmu-appliance did not create (remove that export first)`, "EBUSY");
    }
    if (error instanceof ConfigfsError && error.code === "ENOTEMPTY") {
      throw new ConfigfsError(`${error.message}: the device holds ALUA groups (${dir}/alua) tcmu-appliance did not create (rmdir them first)`, "ENOTEMPTY");
    }
    throw error;
  }
  state.forget(name);
  return record;
}
