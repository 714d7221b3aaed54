// Connecting to a cluster and opening an image, in a thread of its own. rados_connect and
// rbd_open block until the monitors and OSDs answer — up to client_mount_timeout when they do
// not — and a data-plane worker must not: its other devices would stall behind one cluster that
// is down. So each connect runs in a short-lived worker thread (src/rbd-thread-worker.ts),
// which hands back the handles as addresses: librados and librbd handles are not bound to the
// thread that made them. The timeouts are set before connecting so that an unreachable cluster
// or a dead OSD fails a command instead of hanging it past the kernel's cmd_time_out (30 s).
// Connecting (a rados_t: a client, ~17 threads and its sessions) and opening an image in it are
// separate calls, so that the images of one thread share a client (rbd-clients.ts).
import { ptr, type Pointer } from "bun:ffi";
import type { RbdDevConfig } from "../../src/config/dev-config-model.ts";
import { errnoName } from "../../src/libc/errno.ts";
import { RBD_THREAD_WORKER_URL } from "../../src/worker-urls.ts";
import { BackstoreOpenError } from "../types.ts";
import { cString, librbd } from "./librbd-binding.ts";
import { UNAVAILABLE_ERRNOS } from "./rbd-errors.ts";
import type { LockCall } from "./rbd-lock-calls.ts";

/** Seconds before librados gives up on a monitor or an OSD: well inside cmd_time_out (30 s). */
export const CLIENT_MOUNT_TIMEOUT_S = 15;
export const OSD_OP_TIMEOUT_S_DEFAULT = 20;
export const MON_OP_TIMEOUT_S = 15;

/** rados_ioctx_t and rbd_image_t of one open image, as addresses. */
export interface ImageHandles {
  ioctx: number;
  image: number;
}

export type ThreadReply<T> = { ok: true; value: T } | { ok: false; message: string; transient: boolean };

function refusal(config: RbdDevConfig, message: string, status: number): { ok: false; message: string; transient: boolean } {
  return { ok: false, message: `rbd/${config.pool}/${config.image}: ${message}: ${errnoName(-status)}`, transient: UNAVAILABLE_ERRNOS.has(-status) };
}

/** On the rbd thread: a connected rados_t for client.<id> of <conf>, timeouts set first. */
export function connectCluster(config: RbdDevConfig): ThreadReply<number> {
  const { rados } = librbd();
  const out = new BigUint64Array(1);
  let status = rados.rados_create2(ptr(out), cString("ceph"), cString(`client.${config.clientId}`), 0n);
  if (status < 0) return refusal(config, "rados_create2", status);
  const cluster = Number(out[0]!) as Pointer;
  status = rados.rados_conf_read_file(cluster, cString(config.confPath));
  if (status < 0) {
    rados.rados_shutdown(cluster);
    return refusal(config, `cannot read ${config.confPath}`, status);
  }
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
  // Breaking another gateway's exclusive lock (an explicit ALUA transition, rbd-lock.ts)
  // blocklists it at the OSDs before the lock is ours: the fencing. librbd's default, said here
  // because the HA design rests on it (docs/ha.md).
  rados.rados_conf_set(cluster, cString("rbd_blocklist_on_break_lock"), cString("true"));
  status = rados.rados_connect(cluster);
  if (status < 0) {
    rados.rados_shutdown(cluster);
    return refusal(config, `cannot connect to the cluster of ${config.confPath} as client.${config.clientId}`, status);
  }
  return { ok: true, value: Number(cluster) };
}

/** On the rbd thread: the pool's ioctx and the image opened in it, through a connected client. */
export function openImage(config: RbdDevConfig, clusterAddress: number): ThreadReply<ImageHandles> {
  const { rados, rbd } = librbd();
  const out = new BigUint64Array(1);
  const status = rados.rados_ioctx_create(clusterAddress as Pointer, cString(config.pool), ptr(out));
  if (status < 0) return refusal(config, `pool "${config.pool}"`, status);
  const ioctx = Number(out[0]!) as Pointer;
  if (config.namespace !== undefined) rados.rados_ioctx_set_namespace(ioctx, cString(config.namespace));
  const snapshot = config.snapshot === undefined ? null : cString(config.snapshot);
  const open = config.readOnly ? rbd.rbd_open_read_only : rbd.rbd_open;
  const opened = open(ioctx, cString(config.image), ptr(out), snapshot === null ? null : ptr(snapshot));
  if (opened < 0) {
    rados.rados_ioctx_destroy(ioctx);
    const name = `image "${config.image}"${config.snapshot === undefined ? "" : ` snapshot "${config.snapshot}"`}`;
    return refusal(config, `${name} in pool "${config.pool}"`, opened);
  }
  return { ok: true, value: { ioctx: Number(ioctx), image: Number(out[0]!) } };
}

export type RbdThreadCall = { kind: "connect"; config: RbdDevConfig } | { kind: "open"; config: RbdDevConfig; cluster: number } | LockCall;

/** One blocking call on a thread of its own; the calling thread's event loop keeps running. */
export function callInThread<T>(call: RbdThreadCall): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const thread = new Worker(RBD_THREAD_WORKER_URL);
    thread.addEventListener("message", (event: MessageEvent<ThreadReply<T>>) => {
      void thread.terminate();
      const reply = event.data;
      if (reply.ok) resolve(reply.value);
      else reject(new BackstoreOpenError(reply.message, { transient: reply.transient }));
    });
    thread.addEventListener("error", (event) => {
      void thread.terminate();
      reject(new Error(`rbd thread failed: ${event.message}`));
    });
    thread.postMessage(call);
  });
}
