// One open image of a cluster: the handles the connect thread made (rbd-connect.ts) and what
// an attach wants to know about the image — size, object size, features, snapshots.
import { CString, ptr, type Pointer } from "bun:ffi";
import { errnoName } from "../../src/libc/errno.ts";
import type { RbdDevConfig } from "../../src/config/dev-config-model.ts";
import { librbd, RBD_IMAGE_INFO_BYTES, RBD_IMAGE_INFO_OBJECT_SIZE_OFFSET, RBD_SNAP_INFO_BYTES, type Librbd } from "./librbd-binding.ts";
import { leaseClient, type ClientLease } from "./rbd-clients.ts";
import { callInThread, type ImageHandles } from "./rbd-connect.ts";

const ERANGE = 34;

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
  readonly #client: ClientLease;
  readonly #ioctx: Pointer;
  #closed = false;

  private constructor(lib: Librbd, config: RbdDevConfig, client: ClientLease, ioctx: Pointer, handle: Pointer) {
    this.#lib = lib;
    this.config = config;
    this.#client = client;
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

  /**
   * Opens the image (read-only for a snapshot or ;ro) through this thread's client.<id> of
   * <conf>, connecting it first if needed, on a thread of its own. Fails with
   * BackstoreOpenError (transient when the cluster does not answer), or LibrbdMissingError.
   */
  static async open(config: RbdDevConfig): Promise<RbdImage> {
    const lib = librbd();
    const client = await leaseClient(config);
    let handles: ImageHandles;
    try {
      handles = await callInThread<ImageHandles>({ kind: "open", config, cluster: Number(client.cluster) });
    } catch (error) {
      client.release();
      throw error;
    }
    const [ioctx, image] = [handles.ioctx as Pointer, handles.image as Pointer];
    try {
      return new RbdImage(lib, config, client, ioctx, image);
    } catch (error) {
      lib.rbd.rbd_close(image);
      lib.rados.rados_ioctx_destroy(ioctx);
      client.release();
      throw error;
    }
  }

  /** The cluster blocklisted this image's client: images opened from now on get a new one. */
  clientBlocklisted(): void {
    this.#client.markDead();
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
    this.#client.release();
  }
}

function check(status: number, call: string): void {
  if (status < 0) throw new Error(`${call}: ${errnoName(-status)}`);
}
