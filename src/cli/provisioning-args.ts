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

/** Config keys as `create` flags: exports[0].chap_password → --chap-password. */
export function flagFor(path: readonly PropertyKey[]): string {
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
