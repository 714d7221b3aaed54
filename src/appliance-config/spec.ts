// What provisioning works from: a device and its exports with every default resolved, in
// camelCase, built from a validated config-file entry or `create` flags (schema.ts).
import { CMD_TIME_OUT_SECONDS_DEFAULT, defaultHwMaxSectors, MAX_DATA_AREA_MB_DEFAULT, type AluaStateName, type ParsedDevice, type ParsedExport } from "./schema.ts";

export type { AluaStateName } from "./schema.ts";

/** An ALUA target port group: a configfs item under the device's alua/ directory. */
export interface AluaGroupSpec {
  group: string;
  /** 1..65535, unique among the device's groups (and, by configuration, across gateways). */
  id: number;
  state: AluaStateName;
  preferred: boolean;
}

export interface ChapCredentials {
  user: string;
  password: string;
}

export interface LoopExportSpec {
  fabric: "loop";
  /** This gateway's group, which the export's LUN is put in. */
  alua?: AluaGroupSpec;
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
  /** This gateway's group, which the export's LUN is put in. */
  alua?: AluaGroupSpec;
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
  /** wwn/vpd_unit_serial, written before enable; undefined leaves the kernel's (empty) one. */
  serial?: string;
  exports: ExportSpec[];
  /** Other gateways' groups, made beside this gateway's so every path reports them all. */
  aluaPeers: AluaGroupSpec[];
}

/**
 * Every ALUA group the device gets: this gateway's (from its exports, each once, in export
 * order), then the peers'. The schema has checked that names and ids are unique.
 */
export function aluaGroupsOf(spec: Pick<DeviceSpec, "exports" | "aluaPeers">): AluaGroupSpec[] {
  const groups = new Map<string, AluaGroupSpec>();
  for (const entry of spec.exports) if (entry.alua !== undefined && !groups.has(entry.alua.group)) groups.set(entry.alua.group, entry.alua);
  for (const peer of spec.aluaPeers) if (!groups.has(peer.group)) groups.set(peer.group, peer);
  return [...groups.values()];
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
    ...(parsed.serial === undefined ? {} : { serial: parsed.serial }),
    exports: parsed.exports.map((entry) => toExportSpec(entry, hostname, name)),
    aluaPeers: parsed.alua_peers.map((peer) => ({ ...peer })),
  };
}

function toExportSpec(entry: ParsedExport, hostname: string, deviceName: string): ExportSpec {
  if (entry.fabric === "loop") return entry.alua === undefined ? { fabric: "loop" } : { fabric: "loop", alua: { ...entry.alua } };
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
  if (entry.alua !== undefined) spec.alua = { ...entry.alua };
  return spec;
}
