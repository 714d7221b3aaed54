// What provisioning works from: a device and its exports with every default resolved, in
// camelCase, built from a validated config-file entry or `create` flags (schema.ts).
import { CMD_TIME_OUT_SECONDS_DEFAULT, defaultHwMaxSectors, MAX_DATA_AREA_MB_DEFAULT, type ParsedDevice, type ParsedExport } from "./schema.ts";

export interface ChapCredentials {
  user: string;
  password: string;
}

export interface LoopExportSpec {
  fabric: "loop";
}

export interface IscsiExportSpec {
  fabric: "iscsi";
  iqn: string;
  portal: string;
  /** CHAP the initiator must answer (one-way). */
  chap?: ChapCredentials;
  /** CHAP the target answers back (mutual), only with `chap`. */
  mutualChap?: ChapCredentials;
  /** Initiators allowed in (ACLs); empty with `chap`: any initiator knowing the secret. */
  initiators: string[];
  /** No ACL, no CHAP, writable: only when asked for by name. */
  allowAnyone: boolean;
}

export type ExportSpec = LoopExportSpec | IscsiExportSpec;

export interface DeviceSpec {
  name: string;
  /** The dev_config after "<subtype>/": ram, file//path, qcow2//path… */
  backstore: string;
  sizeBytes: number;
  blockSizeBytes: number;
  writeCache: boolean;
  hwMaxSectors: number;
  maxDataAreaMb: number;
  cmdTimeOutSeconds: number;
  exports: ExportSpec[];
}

/** The IQN an export gets when none is given: targetcli's convention, per device. */
export function defaultIqn(hostname: string, deviceName: string): string {
  const host = hostname.toLowerCase().replace(/[^a-z0-9.-]/g, "-").replace(/^[.-]+|[.-]+$/g, "") || "localhost";
  return `iqn.2003-01.org.linux-iscsi.${host}:${deviceName.toLowerCase()}`;
}

export function toDeviceSpec(name: string, parsed: ParsedDevice, hostname: string): DeviceSpec {
  return {
    name,
    backstore: parsed.backstore,
    sizeBytes: parsed.size,
    blockSizeBytes: parsed.block_size,
    writeCache: parsed.write_cache,
    hwMaxSectors: parsed.hw_max_sectors ?? defaultHwMaxSectors(parsed.block_size),
    maxDataAreaMb: parsed.max_data_area_mb ?? MAX_DATA_AREA_MB_DEFAULT,
    cmdTimeOutSeconds: parsed.cmd_time_out ?? CMD_TIME_OUT_SECONDS_DEFAULT,
    exports: parsed.exports.map((entry) => toExportSpec(entry, hostname, name)),
  };
}

function toExportSpec(entry: ParsedExport, hostname: string, deviceName: string): ExportSpec {
  if (entry.fabric === "loop") return { fabric: "loop" };
  const spec: IscsiExportSpec = {
    fabric: "iscsi",
    iqn: entry.iqn ?? defaultIqn(hostname, deviceName),
    portal: entry.portal,
    initiators: entry.initiators,
    allowAnyone: entry.allow_anyone,
  };
  if (entry.chap_user !== undefined && entry.chap_password !== undefined) spec.chap = { user: entry.chap_user, password: entry.chap_password };
  if (entry.chap_mutual_user !== undefined && entry.chap_mutual_password !== undefined) {
    spec.mutualChap = { user: entry.chap_mutual_user, password: entry.chap_mutual_password };
  }
  return spec;
}
