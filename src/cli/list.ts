// `tcmu-appliance list`: every TCMU device in configfs with its backstore, size, exports (each
// with its ALUA group and that group's state, as configfs has them now), state (served by the
// running serve, blocked, enabled) and UIO; OWNER says whether tcmu-appliance created it.
// --json for scripts (with every ALUA group of each device, peers' included).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { CONFIGFS_IO } from "../configfs/io.ts";
import { readInventory, type InventoryEntry } from "../configfs/inventory.ts";
import { instanceHolderPid } from "../serve/instance-lock.ts";
import { SYSTEM_ROOTS } from "../uio/discover.ts";
import { formatBytes } from "./format.ts";
import { COMMON_ARGS, provisionerFrom } from "./provisioning-args.ts";

export interface ListedDevice extends InventoryEntry {
  state: string;
  owner: string;
  /** What serve said about it: how it is served differently, or why it is not served. */
  notes: string[];
}

/** What a running serve wrote to served.json: the devices it serves and those it could not. */
interface ServedFile {
  devices: { hbaId: number; name: string; notes?: string[] }[];
  notServed: { hbaId: number; name: string; reason: string }[];
}

export const listCommand = defineCommand({
  meta: { name: "list", description: "List TCMU devices: backstore, size, exports, state, uio" },
  args: {
    json: { type: "boolean", description: "Print JSON" },
    ...COMMON_ARGS,
  },
  async run({ args }) {
    const provisioner = provisionerFrom(args);
    const runDir = provisioner.state.runDir;
    const servePid = instanceHolderPid(join(runDir, "serve.lock"));
    const servedFile = servePid === undefined ? { devices: [], notServed: [] } : readServed(join(runDir, "served.json"));
    const served = new Map(servedFile.devices.map((device) => [`${device.hbaId}/${device.name}`, device]));
    const refused = new Map(servedFile.notServed.map((device) => [`${device.hbaId}/${device.name}`, device.reason]));
    const owned = provisioner.state.read().devices;
    const devices: ListedDevice[] = (await readInventory(SYSTEM_ROOTS, CONFIGFS_IO)).map((entry) => {
      const key = `${entry.hbaId}/${entry.name}`;
      const record = owned[entry.name]?.hbaId === entry.hbaId ? owned[entry.name] : undefined;
      const notes = [...(served.get(key)?.notes ?? [])];
      const reason = refused.get(key);
      if (reason !== undefined && !served.has(key)) notes.push(`not served: ${reason}`);
      if (record?.repliesOptedOutFor !== undefined) notes.push(`created with nl_reply_supported=-1 beside ${record.repliesOptedOutFor}: enable did not wait for serve`);
      return {
        ...entry,
        state: served.has(key) ? `served (pid ${servePid})` : entry.blocked ? "blocked" : entry.enabled ? "not served" : "disabled",
        owner: record === undefined ? "-" : `tcmu-appliance (${record.source})`,
        notes,
      };
    });
    if (args.json === true) {
      console.log(JSON.stringify({ serve: servePid === undefined ? null : { pid: servePid }, devices }, null, 2));
      return;
    }
    for (const line of listLines(devices)) console.log(line);
  },
});

function readServed(path: string): ServedFile {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<ServedFile>;
    return { devices: parsed.devices ?? [], notServed: parsed.notServed ?? [] };
  } catch {
    return { devices: [], notServed: [] };
  }
}

/** The table and its notes, one string per line. */
export function listLines(devices: ListedDevice[]): string[] {
  const lines: string[] = [];
  const header = ["NAME", "HBA", "BACKSTORE", "SIZE", "EXPORTS", "STATE", "UIO", "OWNER"];
  const rows = devices.map((device) => [
    device.name,
    `user_${device.hbaId}`,
    device.devConfig ?? "-",
    device.sizeBytes === undefined ? "-" : formatBytes(device.sizeBytes),
    device.exports.length === 0 ? "-" : device.exports.join("; "),
    device.state,
    device.uio ?? "-",
    device.owner,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  for (const row of [header, ...rows]) lines.push(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
  if (devices.length === 0) lines.push("(no TCMU devices in configfs)");
  for (const device of devices) {
    const peers = device.aluaGroups.filter((group) => group.members.length === 0);
    if (peers.length > 0 && device.aluaGroups.length > peers.length) {
      lines.push(`note: ${device.name}: ALUA peer groups ${peers.map((group) => `${group.name} id ${group.id ?? "-"} ${group.state}`).join(", ")}`);
    }
    for (const note of device.notes) lines.push(`note: ${device.name}: ${note}`);
  }
  return lines;
}
