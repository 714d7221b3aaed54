// Worker entry URLs, resolved from this file because it sits beside main.ts: in a compiled
// binary every module's import.meta.url is the binary's root (file:///$bunfs/root/…), so a URL
// built in a subfolder would point outside it. build.ts passes each of these as an entrypoint.
export const UIO_WAIT_WORKER_URL = new URL("./uio-wait-worker.ts", import.meta.url).href;
export const IO_THREAD_WORKER_URL = new URL("./io-thread-worker.ts", import.meta.url).href;
export const CONFIGFS_WORKER_URL = new URL("./configfs-worker.ts", import.meta.url).href;
/** Blocking librbd calls (connect, allocation walks), off the data-plane workers. */
export const RBD_THREAD_WORKER_URL = new URL("./rbd-thread-worker.ts", import.meta.url).href;
export const DATA_PLANE_WORKER_URL = new URL("./data-plane-worker.ts", import.meta.url).href;
/** Not a worker: the store a data-plane worker imports for `bench --isolation`'s stalled device. */
export const BENCH_STALLING_STORE_URL = new URL("./bench-stalling-store.ts", import.meta.url).href;
