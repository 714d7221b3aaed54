// What `create`, `remove` and `list` share: where configfs and the run directory are, the
// provisioner built from them, and turning a zod issue about a device into the flag to fix.
import type { z } from "zod";
import { formatKeyPath } from "../appliance-config/load.ts";
import { CONFIGFS_IO } from "../configfs/io.ts";
import { SYSTEM_KERNEL_SETUP } from "../configfs/kernel-setup.ts";
import type { Provisioner } from "../configfs/provision.ts";
import { DEFAULT_RUN_DIR, StateStore } from "../configfs/state.ts";
import { PROVISIONING_HBA_ID } from "../configfs/user-device.ts";
import { DEFAULT_SUBTYPE, SYSTEM_ROOTS } from "../uio/discover.ts";

export const COMMON_ARGS = {
  subtype: { type: "string", description: `The <subtype> serve claims (default ${DEFAULT_SUBTYPE})` },
  "run-dir": { type: "string", description: `Where serve keeps its lock and state (default ${DEFAULT_RUN_DIR})` },
} as const;

export function provisionerFrom(args: { subtype?: unknown; "run-dir"?: unknown }): Provisioner {
  return {
    roots: SYSTEM_ROOTS,
    io: CONFIGFS_IO,
    setup: SYSTEM_KERNEL_SETUP,
    state: new StateStore(args["run-dir"] === undefined ? DEFAULT_RUN_DIR : String(args["run-dir"])),
    subtype: args.subtype === undefined ? DEFAULT_SUBTYPE : String(args.subtype),
    hbaId: PROVISIONING_HBA_ID,
  };
}

/**
 * Every value of a string flag, in order, however often it is given (`--f a --f=b` → a, b):
 * citty keeps only the last. Arguments after "--" are not flags.
 */
export function repeatedFlag(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index < rawArgs.length; index += 1) {
    const argument = rawArgs[index]!;
    if (argument === "--") break;
    if (argument === `--${name}` && index + 1 < rawArgs.length) values.push(rawArgs[++index]!);
    else if (argument.startsWith(`--${name}=`)) values.push(argument.slice(name.length + 3));
  }
  return values;
}

/** Config keys as `create` flags: exports[0].chap_password → --chap-password, exports[0].alua.id → --alua-id. */
export function flagFor(path: readonly PropertyKey[]): string {
  if (path.includes("alua_peers")) return "--alua-peer";
  const alua = path.indexOf("alua");
  if (alua >= 0) return `--alua-${String(path[alua + 1] ?? "group")}`;
  const last = [...path].reverse().find((part) => typeof part === "string" && part !== "exports");
  if (last === undefined) return formatKeyPath(path);
  if (last === "initiators") return "--initiator";
  if (last === "backstore") return "CONFIG";
  if (last === "fabric") return "--export";
  return `--${String(last).replaceAll("_", "-")}`;
}

export function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `unknown option ${issue.keys.join(", ")}`;
  return `${flagFor(issue.path)}: ${issue.message}`;
}
