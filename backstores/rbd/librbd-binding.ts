// The one bun:ffi binding of librados and librbd. Loaded with import() only when an rbd device
// is opened, so the binary stays one file and a host without librbd1 serves every other store;
// there the open fails naming the package. Handles (rados_t, rados_ioctx_t, rbd_image_t,
// rbd_completion_t) are opaque pointers; out-parameters are 8-byte buffers.
import { dlopen, FFIType } from "bun:ffi";

const { i32, u8, u64, i64, ptr, void: none } = FFIType;

function openLibraries() {
  const rados = dlopen("librados.so.2", {
    rados_create2: { args: [ptr, ptr, ptr, u64], returns: i32 },
    rados_conf_read_file: { args: [ptr, ptr], returns: i32 },
    rados_conf_set: { args: [ptr, ptr, ptr], returns: i32 },
    rados_connect: { args: [ptr], returns: i32 },
    rados_shutdown: { args: [ptr], returns: none },
    rados_ioctx_create: { args: [ptr, ptr, ptr], returns: i32 },
    rados_ioctx_destroy: { args: [ptr], returns: none },
    rados_ioctx_set_namespace: { args: [ptr, ptr], returns: none },
  });
  const rbd = dlopen("librbd.so.1", {
    rbd_open: { args: [ptr, ptr, ptr, ptr], returns: i32 },
    rbd_open_read_only: { args: [ptr, ptr, ptr, ptr], returns: i32 },
    rbd_close: { args: [ptr], returns: i32 },
    rbd_get_size: { args: [ptr, ptr], returns: i32 },
    rbd_stat: { args: [ptr, ptr, u64], returns: i32 },
    rbd_get_features: { args: [ptr, ptr], returns: i32 },
    rbd_snap_list: { args: [ptr, ptr, ptr], returns: i32 },
    rbd_snap_list_end: { args: [ptr], returns: none },
    rbd_set_image_notification: { args: [ptr, i32, i32], returns: i32 },
    rbd_poll_io_events: { args: [ptr, ptr, i32], returns: i32 },
    rbd_aio_create_completion: { args: [ptr, ptr, ptr], returns: i32 },
    rbd_aio_release: { args: [ptr], returns: none },
    rbd_aio_get_return_value: { args: [ptr], returns: i64 },
    rbd_aio_get_arg: { args: [ptr], returns: ptr },
    rbd_aio_readv: { args: [ptr, ptr, i32, u64, ptr], returns: i32 },
    rbd_aio_writev: { args: [ptr, ptr, i32, u64, ptr], returns: i32 },
    rbd_aio_flush: { args: [ptr, ptr], returns: i32 },
    rbd_aio_discard: { args: [ptr, u64, u64, ptr], returns: i32 },
    rbd_aio_write_zeroes: { args: [ptr, u64, u64, ptr, i32, i32], returns: i32 },
    // image, offset, length, cmp_buf, buf, completion, mismatch_off (u64 *), op_flags.
    rbd_aio_compare_and_write: { args: [ptr, u64, u64, ptr, ptr, ptr, ptr, i32], returns: i32 },
    rbd_aio_is_complete: { args: [ptr], returns: i32 },
    // image, fromsnapname, offset, length, include_parent, whole_object, callback, arg.
    rbd_diff_iterate2: { args: [ptr, ptr, u64, u64, u8, u8, ptr, ptr], returns: i32 },
    // The exclusive lock (rbd-lock.ts), called on the rbd thread only: each waits on the cluster.
    // image, int *is_owner.
    rbd_is_exclusive_lock_owner: { args: [ptr, ptr], returns: i32 },
    // image, rbd_lock_mode_t.
    rbd_lock_acquire: { args: [ptr, i32], returns: i32 },
    rbd_lock_release: { args: [ptr], returns: i32 },
    // image, rbd_lock_mode_t *mode, char **owners, size_t *max_owners (in: room, out: count).
    rbd_lock_get_owners: { args: [ptr, ptr, ptr, ptr], returns: i32 },
    rbd_lock_get_owners_cleanup: { args: [ptr, u64], returns: none },
    // image, rbd_lock_mode_t, const char *owner (an address rbd_lock_get_owners gave).
    rbd_lock_break: { args: [ptr, i32, ptr], returns: i32 },
    // image, key, value, size_t *value_len (in: room, out: length with the NUL).
    rbd_metadata_get: { args: [ptr, ptr, ptr, ptr], returns: i32 },
    rbd_metadata_set: { args: [ptr, ptr, ptr], returns: i32 },
  });
  return { rados: rados.symbols, rbd: rbd.symbols };
}

export type Librbd = ReturnType<typeof openLibraries>;

/** rbd_lock_mode_t: RBD_LOCK_MODE_EXCLUSIVE (librbd.h). */
export const RBD_LOCK_MODE_EXCLUSIVE = 0;
/** A NUL-terminated UTF-8 copy of `text`, for the char * arguments of these calls. */
export const cString = (text: string) => Buffer.from(`${text}\0`, "utf8");

/** rbd_set_image_notification's type for an eventfd. */
export const EVENT_TYPE_EVENTFD = 2;
/** sizeof(rbd_image_info_t) on 64-bit Linux: 3 u64, int (padded), 24-byte prefix, i64, 96-byte name. */
export const RBD_IMAGE_INFO_BYTES = 8 * 3 + 8 + 24 + 8 + 96;
export const RBD_IMAGE_INFO_OBJECT_SIZE_OFFSET = 8;

/** sizeof(rbd_snap_info_t): u64 id, u64 size, const char *name. */
export const RBD_SNAP_INFO_BYTES = 24;

/** Why librbd is not there, for the open's refusal. */
export class LibrbdMissingError extends Error {
  constructor(cause: unknown) {
    super(`librbd is not available (${cause instanceof Error ? cause.message : String(cause)}): install librbd1 (Debian/Ubuntu) or librbd1 / ceph-common (Fedora, RHEL)`);
    this.name = "LibrbdMissingError";
  }
}

let loaded: Librbd | undefined;

/** The bound libraries of this thread, bound on first use. */
export function librbd(): Librbd {
  if (loaded !== undefined) return loaded;
  try {
    loaded = openLibraries();
  } catch (error) {
    throw new LibrbdMissingError(error);
  }
  return loaded;
}
