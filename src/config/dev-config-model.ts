// What a parsed dev_config is (dev-config.ts parses it): plain data a data-plane thread can be
// handed, and the error every refusal of one raises. Kept apart from the parser so the threads
// that open stores do not load zod (~2 MB of memory each).

export interface RamDevConfig {
  kind: "ram";
  label?: string;
  /** ;max= — memory cap in bytes. */
  maxBytes?: number;
}

export interface FileDevConfig {
  kind: "file";
  path: string;
  readOnly: boolean;
  direct: boolean;
  sync: boolean;
}

export interface Qcow2DevConfig {
  kind: "qcow2";
  path: string;
  snapshot?: string;
}

/** A bare path: qcow2 or raw is decided at open from the first bytes. */
export interface DetectDevConfig {
  kind: "detect";
  path: string;
  readOnly: boolean;
  direct: boolean;
  sync: boolean;
  snapshot?: string;
}

export interface RbdDevConfig {
  kind: "rbd";
  pool: string;
  image: string;
  /** A snapshot: served read-only. */
  snapshot?: string;
  namespace?: string;
  /** ceph.conf; default /etc/ceph/ceph.conf. */
  confPath: string;
  /** The cephx client id without "client."; default admin. */
  clientId: string;
  readOnly: boolean;
  /** tcmu-runner's ;osd_op_timeout=: seconds before an OSD request fails (rados_osd_op_timeout). */
  osdOpTimeoutSeconds?: number;
}

export type DevConfig = RamDevConfig | FileDevConfig | Qcow2DevConfig | DetectDevConfig | RbdDevConfig;

export const RBD_CONF_DEFAULT = "/etc/ceph/ceph.conf";
export const RBD_CLIENT_ID_DEFAULT = "admin";

/** A dev_config that cannot be served as written; `part` is the offending piece. */
export class DevConfigError extends Error {
  readonly code = "E_CONFIG_INVALID";
  readonly part: string;

  constructor(devConfigPath: string, part: string, problem: string) {
    super(`dev_config "${devConfigPath}": ${part}: ${problem}`);
    this.name = "DevConfigError";
    this.part = part;
  }
}
