// Connecting to a cluster and opening an image, in a thread of its own. rados_connect and
// rbd_open block until the monitors and OSDs answer — up to client_mount_timeout when they do
// not — and a data-plane worker must not: its other devices would stall behind one cluster that
// is down. So each connect runs in a short-lived worker thread (src/rbd-thread-worker.ts),
// which hands back the handles as addresses: librados and librbd handles are not bound to the
// thread that made them. The timeouts are set before connecting so that an unreachable cluster
// or a dead OSD fails a command instead of hanging it past the kernel's cmd_time_out (30 s).
import { ptr, type Pointer } from "bun:ffi";
import type { RbdDevConfig } from "../../src/config/dev-config.ts";
import { errnoName } from "../../src/libc/errno.ts";
import { RBD_THREAD_WORKER_URL } from "../../src/worker-urls.ts";
import { BackstoreOpenError } from "../types.ts";
import { librbd } from "./librbd-binding.ts";
import { UNAVAILABLE_ERRNOS } from "./rbd-errors.ts";

/** Seconds before librados gives up on a monitor or an OSD: well inside cmd_time_out (30 s). */
export const CLIENT_MOUNT_TIMEOUT_S = 15;
export const OSD_OP_TIMEOUT_S_DEFAULT = 20;
export const MON_OP_TIMEOUT_S = 15;

/** rados_t, rados_ioctx_t and rbd_image_t of one open image, as addresses. */
export interface ImageHandles {
  cluster: number;
  ioctx: number;
  image: number;
}

export type ConnectReply = { ok: true; handles: ImageHandles } | { ok: false; message: string; transient: boolean };

const cString = (text: string) => Buffer.from(`${text}\0`, "utf8");

/** The blocking part, on the connect thread: create, configure, connect, open; undone on failure. */
export function connectImage(config: RbdDevConfig): ConnectReply {
  const { rados, rbd } = librbd();
  const out = new BigUint64Array(1);
  const what = `rbd/${config.pool}/${config.image}`;
  const refuse = (message: string, status: number): ConnectReply => ({ ok: false, message: `${what}: ${message}: ${errnoName(-status)}`, transient: UNAVAILABLE_ERRNOS.has(-status) });
  let status = rados.rados_create2(ptr(out), cString("ceph"), cString(`client.${config.clientId}`), 0n);
  if (status < 0) return refuse("rados_create2", status);
  const cluster = Number(out[0]!) as Pointer;
  let ioctx: Pointer | undefined;
  const fail = (reply: ConnectReply): ConnectReply => {
    if (ioctx !== undefined) rados.rados_ioctx_destroy(ioctx);
    rados.rados_shutdown(cluster);
    return reply;
  };
  status = rados.rados_conf_read_file(cluster, cString(config.confPath));
  if (status < 0) return fail(refuse(`cannot read ${config.confPath}`, status));
  const timeouts: [string, number][] = [
    ["client_mount_timeout", CLIENT_MOUNT_TIMEOUT_S],
    ["rados_mon_op_timeout", MON_OP_TIMEOUT_S],
    ["rados_osd_op_timeout", config.osdOpTimeoutSeconds ?? OSD_OP_TIMEOUT_S_DEFAULT],
  ];
  for (const [option, seconds] of timeouts) rados.rados_conf_set(cluster, cString(option), cString(String(seconds)));
  // UNMAP promises zeros (LBPRZ): a discard smaller than an object must zero its range, not be
  // skipped, which is librbd's default.
  rados.rados_conf_set(cluster, cString("rbd_skip_partial_discard"), cString("false"));
  // No librbd cache: every write completes when the OSDs have it, so FUA and WCE=0 writes need
  // no flush after them. With the default cache (writearound, after the first flush) a write is
  // acknowledged at once and each durable write's flush waits for every write in flight — at
  // queue depth 32, 32 of them.
  rados.rados_conf_set(cluster, cString("rbd_cache"), cString("false"));
  status = rados.rados_connect(cluster);
  if (status < 0) return fail(refuse(`cannot connect to the cluster of ${config.confPath} as client.${config.clientId}`, status));
  status = rados.rados_ioctx_create(cluster, cString(config.pool), ptr(out));
  if (status < 0) return fail(refuse(`pool "${config.pool}"`, status));
  ioctx = Number(out[0]!) as Pointer;
  if (config.namespace !== undefined) rados.rados_ioctx_set_namespace(ioctx, cString(config.namespace));
  const snapshot = config.snapshot === undefined ? null : cString(config.snapshot);
  const open = config.readOnly ? rbd.rbd_open_read_only : rbd.rbd_open;
  status = open(ioctx, cString(config.image), ptr(out), snapshot === null ? null : ptr(snapshot));
  if (status < 0) {
    const name = `image "${config.image}"${config.snapshot === undefined ? "" : ` snapshot "${config.snapshot}"`}`;
    return fail(refuse(`${name} in pool "${config.pool}"`, status));
  }
  return { ok: true, handles: { cluster: Number(cluster), ioctx: Number(ioctx), image: Number(out[0]!) } };
}

/** connectImage on a thread of its own; the calling thread's event loop keeps running. */
export function connectInThread(config: RbdDevConfig): Promise<ImageHandles> {
  return new Promise<ImageHandles>((resolve, reject) => {
    const thread = new Worker(RBD_THREAD_WORKER_URL);
    thread.addEventListener("message", (event: MessageEvent<ConnectReply>) => {
      void thread.terminate();
      const reply = event.data;
      if (reply.ok) resolve(reply.handles);
      else reject(new BackstoreOpenError(reply.message, { transient: reply.transient }));
    });
    thread.addEventListener("error", (event) => {
      void thread.terminate();
      reject(new Error(`rbd connect thread failed: ${event.message}`));
    });
    thread.postMessage({ kind: "connect", config });
  });
}
