// Connecting to a cluster and opening one image: the synchronous part of an rbd device, done
// once at attach (and undone at close). Timeouts are set before connecting so that an
// unreachable cluster or a dead OSD fails a command instead of hanging it past the kernel's
// cmd_time_out (30 s): the initiator then retries.
import { CString, ptr, type Pointer } from "bun:ffi";
import { errnoName } from "../../src/libc/errno.ts";
import type { RbdDevConfig } from "../../src/config/dev-config.ts";
import { BackstoreOpenError } from "../types.ts";
import { librbd, RBD_IMAGE_INFO_BYTES, RBD_IMAGE_INFO_OBJECT_SIZE_OFFSET, RBD_SNAP_INFO_BYTES, type Librbd } from "./librbd-binding.ts";

const ERANGE = 34;

/** Seconds before librados gives up on a monitor or an OSD: well inside cmd_time_out (30 s). */
export const CLIENT_MOUNT_TIMEOUT_S = 15;
export const OSD_OP_TIMEOUT_S_DEFAULT = 20;
export const MON_OP_TIMEOUT_S = 15;

/** RBD_FEATURE_* bits worth naming in `inspect` and logs. */
export const RBD_FEATURES: readonly [number, string][] = [
  [1 << 0, "layering"],
  [1 << 1, "striping"],
  [1 << 2, "exclusive-lock"],
  [1 << 3, "object-map"],
  [1 << 4, "fast-diff"],
  [1 << 5, "deep-flatten"],
  [1 << 6, "journaling"],
  [1 << 7, "data-pool"],
  [1 << 8, "operations"],
  [1 << 9, "migrating"],
  [1 << 10, "non-primary"],
];

const cString = (text: string) => Buffer.from(`${text}\0`, "utf8");

export class RbdImage {
  readonly config: RbdDevConfig;
  readonly handle: Pointer;
  readonly sizeBytes: number;
  readonly objectSizeBytes: number;
  readonly features: string[];
  readonly readOnly: boolean;
  readonly description: string;
  readonly warnings: string[] = [];
  readonly #lib: Librbd;
  readonly #cluster: Pointer;
  readonly #ioctx: Pointer;
  #closed = false;

  private constructor(lib: Librbd, config: RbdDevConfig, cluster: Pointer, ioctx: Pointer, handle: Pointer) {
    this.#lib = lib;
    this.config = config;
    this.#cluster = cluster;
    this.#ioctx = ioctx;
    this.handle = handle;
    this.readOnly = config.readOnly;
    const size = new BigUint64Array(1);
    check(lib.rbd.rbd_get_size(handle, ptr(size)), "rbd_get_size");
    this.sizeBytes = Number(size[0]!);
    const info = new Uint8Array(RBD_IMAGE_INFO_BYTES);
    check(lib.rbd.rbd_stat(handle, ptr(info), RBD_IMAGE_INFO_BYTES), "rbd_stat");
    this.objectSizeBytes = Number(new DataView(info.buffer).getBigUint64(RBD_IMAGE_INFO_OBJECT_SIZE_OFFSET, true));
    const features = new BigUint64Array(1);
    check(lib.rbd.rbd_get_features(handle, ptr(features)), "rbd_get_features");
    this.features = RBD_FEATURES.filter(([bit]) => (Number(features[0]!) & bit) !== 0).map(([, name]) => name);
    const where = `${config.pool}/${config.namespace === undefined ? "" : `${config.namespace}/`}${config.image}${config.snapshot === undefined ? "" : `@${config.snapshot}`}`;
    this.description = `rbd ${where}${this.readOnly ? " (read-only)" : ""}`;
  }

  /** Connects as client.<id> with <conf> and opens the image (read-only for a snapshot or ;ro). */
  static open(config: RbdDevConfig): RbdImage {
    const lib = librbd();
    const { rados, rbd } = lib;
    const out = new BigUint64Array(1);
    const what = `rbd/${config.pool}/${config.image}`;
    let status = rados.rados_create2(ptr(out), cString("ceph"), cString(`client.${config.clientId}`), 0n);
    if (status < 0) throw new BackstoreOpenError(`${what}: rados_create2: ${errnoName(-status)}`);
    const cluster = Number(out[0]!) as Pointer;
    let ioctx: Pointer | undefined;
    try {
      status = rados.rados_conf_read_file(cluster, cString(config.confPath));
      if (status < 0) throw new BackstoreOpenError(`${what}: cannot read ${config.confPath}: ${errnoName(-status)}`);
      const timeouts: [string, number][] = [
        ["client_mount_timeout", CLIENT_MOUNT_TIMEOUT_S],
        ["rados_mon_op_timeout", MON_OP_TIMEOUT_S],
        ["rados_osd_op_timeout", config.osdOpTimeoutSeconds ?? OSD_OP_TIMEOUT_S_DEFAULT],
      ];
      for (const [option, seconds] of timeouts) rados.rados_conf_set(cluster, cString(option), cString(String(seconds)));
      // UNMAP promises zeros (LBPRZ): a discard smaller than an object must zero its range, not
      // be skipped, which is librbd's default.
      rados.rados_conf_set(cluster, cString("rbd_skip_partial_discard"), cString("false"));
      status = rados.rados_connect(cluster);
      if (status < 0) throw new BackstoreOpenError(`${what}: cannot connect to the cluster of ${config.confPath} as client.${config.clientId}: ${errnoName(-status)}`);
      status = rados.rados_ioctx_create(cluster, cString(config.pool), ptr(out));
      if (status < 0) throw new BackstoreOpenError(`${what}: pool "${config.pool}": ${errnoName(-status)}`);
      ioctx = Number(out[0]!) as Pointer;
      if (config.namespace !== undefined) rados.rados_ioctx_set_namespace(ioctx, cString(config.namespace));
      const snapshot = config.snapshot === undefined ? null : cString(config.snapshot);
      const open = config.readOnly ? rbd.rbd_open_read_only : rbd.rbd_open;
      status = open(ioctx, cString(config.image), ptr(out), snapshot === null ? null : ptr(snapshot));
      if (status < 0) {
        const name = `image "${config.image}"${config.snapshot === undefined ? "" : ` snapshot "${config.snapshot}"`}`;
        throw new BackstoreOpenError(`${what}: ${name} in pool "${config.pool}": ${errnoName(-status)}`);
      }
      return new RbdImage(lib, config, cluster, ioctx, Number(out[0]!) as Pointer);
    } catch (error) {
      if (ioctx !== undefined) rados.rados_ioctx_destroy(ioctx);
      rados.rados_shutdown(cluster);
      throw error;
    }
  }

  /** The image's snapshots: id, name, size. */
  snapshots(): { id: number; name: string; sizeBytes: number }[] {
    const rbd = this.#lib.rbd;
    const max = new Int32Array([16]);
    for (;;) {
      const infos = new Uint8Array(max[0]! * RBD_SNAP_INFO_BYTES);
      const count = rbd.rbd_snap_list(this.handle, ptr(infos), ptr(max));
      if (count === -ERANGE) continue; // max now says how many there are
      check(count, "rbd_snap_list");
      const view = new DataView(infos.buffer);
      const snapshots = Array.from({ length: count }, (_, index) => {
        const at = index * RBD_SNAP_INFO_BYTES;
        const name = new CString(Number(view.getBigUint64(at + 16, true)) as Pointer).toString();
        return { id: Number(view.getBigUint64(at, true)), name, sizeBytes: Number(view.getBigUint64(at + 8, true)) };
      });
      rbd.rbd_snap_list_end(ptr(infos));
      return snapshots;
    }
  }

  /** The image's size now (it may have grown on the cluster). */
  currentSizeBytes(): number {
    const size = new BigUint64Array(1);
    check(this.#lib.rbd.rbd_get_size(this.handle, ptr(size)), "rbd_get_size");
    return Number(size[0]!);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.rbd.rbd_close(this.handle);
    this.#lib.rados.rados_ioctx_destroy(this.#ioctx);
    this.#lib.rados.rados_shutdown(this.#cluster);
  }
}

function check(status: number, call: string): void {
  if (status < 0) throw new Error(`${call}: ${errnoName(-status)}`);
}
