// `tcmu-appliance create NAME CONFIG --size …`: a TCMU device in configfs (what targetcli and
// the kernel's target-export-device script do), exported through tcm_loop and/or iSCSI. With
// serve running, `enable` returns once serve attached the device, or fails with serve's reason.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { defineCommand } from "citty";
import { deviceSchema } from "../appliance-config/schema.ts";
import { aluaGroupsOf, toDeviceSpec } from "../appliance-config/spec.ts";
import { provisionDevice } from "../configfs/provision.ts";
import { formatBytes } from "./format.ts";
import { COMMON_ARGS, describeIssue, provisionerFrom, repeatedFlag } from "./provisioning-args.ts";
import { clearStaleReplySwitch } from "./stale-replies.ts";

export const createCommand = defineCommand({
  meta: { name: "create", description: "Create a TCMU device served by tcmu-appliance, optionally exported" },
  args: {
    name: { type: "positional", description: "Device name (letters, digits, '_', '.', '-')", required: true },
    config: { type: "positional", description: "Backstore: ram[/label], file//path, qcow2//path or an absolute path", required: true },
    size: { type: "string", description: "Size (bytes, or with K, M, G, T)", required: true },
    "block-size": { type: "string", description: "Logical block size: 512 (default), 1024, 2048 or 4096" },
    "write-cache": { type: "boolean", description: "Start with the volatile write cache enabled (WCE=1)" },
    "hw-max-sectors": { type: "string", description: "Optimal transfer per command, in blocks (default 512 KiB worth); the data area bounds the largest" },
    "max-data-area-mb": { type: "string", description: "Data area per device in MiB (default 64)" },
    "cmd-time-out": { type: "string", description: "Seconds before the kernel fails a command nobody answers (default 30)" },
    export: { type: "string", description: "loop, iscsi, or loop,iscsi" },
    iqn: { type: "string", description: "iSCSI target name (default iqn.2003-01.org.linux-iscsi.<host>:<name>)" },
    portal: { type: "string", description: "iSCSI portal address:port (default 0.0.0.0:3260)" },
    "chap-user": { type: "string", description: "CHAP user the initiator must log in with" },
    "chap-password": { type: "string", description: "CHAP secret (12+ characters; see --chap-password-file)" },
    "chap-password-file": { type: "string", description: "Read the CHAP secret from this file (keeps it out of ps)" },
    "chap-mutual-user": { type: "string", description: "Mutual CHAP: the target's user" },
    "chap-mutual-password": { type: "string", description: "Mutual CHAP: the target's secret" },
    initiator: { type: "string", description: "Initiator IQNs allowed in (ACLs; comma-separated or repeated)" },
    "allow-anyone": { type: "boolean", description: "iSCSI without CHAP or ACLs, writable by every initiator (explicit opt-in)" },
    serial: { type: "string", description: "VPD unit serial (every gateway exporting one image gives the same; multipath joins paths by it)" },
    "alua-group": { type: "string", description: "ALUA target port group this gateway's export(s) go in (needs --alua-id)" },
    "alua-id": { type: "string", description: "Its target port group id, 1-65535, unique across gateways" },
    "alua-state": { type: "string", description: "active-optimized (default), active-non-optimized, standby or unavailable" },
    "alua-preferred": { type: "boolean", description: "Report the group as preferred (PREF bit)" },
    "alua-peer": { type: "string", description: "Another gateway's group GROUP:ID[:STATE] (comma-separated or repeated)" },
    json: { type: "boolean", description: "Print the created device as JSON" },
    ...COMMON_ARGS,
  },
  async run({ args, rawArgs }) {
    const name = String(args.name);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) fail(`NAME "${name}": letters, digits, '_', '.', '-' (64 at most), starting with a letter or digit`);
    const input = deviceInputFrom(args, rawArgs);
    const parsed = deviceSchema.safeParse(input);
    if (!parsed.success) fail(parsed.error.issues.map(describeIssue).join("\n"));
    const provisioner = provisionerFrom(args);
    if (clearStaleReplySwitch(provisioner.state.runDir)) {
      console.error("create: a serve that did not exit cleanly had left SUPP_KERN_CMD_REPLY on; switched it off so enable cannot hang");
    }
    const spec = toDeviceSpec(name, parsed.data, hostname());
    let record;
    try {
      record = await provisionDevice(provisioner, spec, "cli");
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error));
    }
    if (args.json === true) {
      console.log(JSON.stringify(record, null, 2));
      return;
    }
    const exports = record.exports.map((made) => (made.fabric === "loop" ? `loop ${made.wwn}` : `iscsi ${made.iqn} on ${made.portal} (${made.access})`));
    console.log(`created ${name}: user_${record.hbaId}/${name}, ${spec.backstore}, ${formatBytes(spec.sizeBytes)}, block ${spec.blockSizeBytes}`);
    for (const line of exports) console.log(`exported: ${line}`);
    if (spec.serial !== undefined) console.log(`serial: ${spec.serial}`);
    for (const group of aluaGroupsOf(spec)) {
      const own = spec.exports.some((entry) => entry.alua?.group === group.group);
      console.log(`alua: ${own ? "group" : "peer group"} ${group.group} id ${group.id} ${group.state}${group.preferred ? ", preferred" : ""}`);
    }
    if (record.repliesOptedOutFor !== undefined) {
      console.log(
        `note: ${record.repliesOptedOutFor} also serves TCMU devices here, so ${name} was created with nl_reply_supported=-1: ` +
          "its enable did not wait for serve's verdict (serve attaches it all the same; a bad backstore shows in serve's log and `list`)",
      );
    }
  },
});

/**
 * The flags as a config-file device entry (snake_case, unvalidated: deviceSchema judges it);
 * combinations the schema cannot see (a flag without the export it configures) fail here.
 */
export function deviceInputFrom(args: Record<string, unknown>, rawArgs: readonly string[]): Record<string, unknown> {
  const fabrics = args.export === undefined ? [] : String(args.export).split(",").filter(Boolean);
  if (fabrics.length === 0 && (args.iqn ?? args["chap-user"] ?? args.initiator ?? args.portal) !== undefined) {
    fail("--iqn, --portal, --chap-* and --initiator need --export iscsi");
  }
  const alua = aluaArgs(args);
  if (fabrics.length === 0 && alua !== undefined) fail("--alua-group puts the exports' LUNs in a group: it needs --export");
  const password = args["chap-password-file"] === undefined ? args["chap-password"] : readSecret(String(args["chap-password-file"]));
  const iscsi = {
    fabric: "iscsi",
    ...defined({
      iqn: args.iqn,
      portal: args.portal,
      chap_user: args["chap-user"],
      chap_password: password,
      chap_mutual_user: args["chap-mutual-user"],
      chap_mutual_password: args["chap-mutual-password"],
      allow_anyone: args["allow-anyone"],
    }),
    initiators: listFlag(rawArgs, "initiator"),
    ...(alua === undefined ? {} : { alua }),
  };
  return {
    backstore: String(args.config),
    size: String(args.size),
    ...defined({
      block_size: numberArg(args["block-size"]),
      write_cache: args["write-cache"],
      hw_max_sectors: numberArg(args["hw-max-sectors"]),
      max_data_area_mb: numberArg(args["max-data-area-mb"]),
      cmd_time_out: numberArg(args["cmd-time-out"]),
      serial: args.serial,
    }),
    // Every export of this create goes in the one group --alua-group names.
    exports: fabrics.map((fabric) => (fabric === "iscsi" ? iscsi : { fabric, ...(alua === undefined ? {} : { alua }) })),
    alua_peers: listFlag(rawArgs, "alua-peer").map(peerArg),
  };
}

/** The values of a comma-separated flag that may also be repeated. */
function listFlag(rawArgs: readonly string[], name: string): string[] {
  return repeatedFlag(rawArgs, name).flatMap((value) => value.split(",")).filter(Boolean);
}

/** --alua-group and its companions as the config file's `alua` table; undefined without any. */
function aluaArgs(args: Record<string, unknown>): Record<string, unknown> | undefined {
  const given = defined({ group: args["alua-group"], id: numberArg(args["alua-id"]), state: args["alua-state"], preferred: args["alua-preferred"] });
  if (Object.keys(given).length === 0) return undefined;
  if (given.group === undefined) fail("--alua-id, --alua-state and --alua-preferred need --alua-group");
  if (given.id === undefined) fail("--alua-group needs --alua-id (1-65535, unique across gateways)");
  return given;
}

/** "gw-b:2[:state]" → { group, id, state }; the schema judges the values. */
function peerArg(text: string): Record<string, unknown> {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => part === "")) fail(`--alua-peer "${text}": expected GROUP:ID[:STATE], e.g. gw-b:2:active-non-optimized`);
  return defined({ group: parts[0], id: numberArg(parts[1]), state: parts[2] });
}

function numberArg(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  return Number.isFinite(number) && String(value).trim() !== "" ? number : (String(value) as unknown as number);
}

/** The entries whose value is not undefined (zod defaults apply to absent keys only). */
function defined(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
}

function readSecret(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (error) {
    fail(`--chap-password-file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function fail(message: string): never {
  for (const line of message.split("\n")) console.error(`create: ${line}`);
  process.exit(1);
}
