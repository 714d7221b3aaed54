// test/ring's ScriptedBackstore served on a data-plane worker (loaded through
// DeviceSpec.openerModule): its `bytes` and `durable` images are two shared files the test maps
// as well (sharedImage), and its pending operations run in an order a seeded PRNG picks, a few
// in each round of the worker's loop (deferred tasks), so commands complete out of order.
// dev_config: "scripted:<seed>:<bytes file>:<durable file>".
import { toArrayBuffer } from "bun:ffi";
import type { Backstore } from "../../backstores/types.ts";
import { defer } from "../../src/data-plane/readable-watch.ts";
import * as libc from "../../src/libc/libc.ts";
import { Prng, ScriptedBackstore } from "../ring/scripted-backstore.ts";

/** A shared file of `sizeBytes` mapped here; every thread that maps it sees the same bytes. */
export function sharedImage(path: string, sizeBytes: number): Uint8Array {
  const fd = libc.open(path, libc.O_RDWR | libc.O_CREAT);
  try {
    libc.ftruncate(fd, sizeBytes);
    return new Uint8Array(toArrayBuffer(libc.mmap(fd, sizeBytes, path), 0, sizeBytes));
  } finally {
    libc.close(fd);
  }
}

export async function openBackstore(configPath: string, context: { sizeBytes: number }): Promise<Backstore> {
  const [kind, seed, bytesPath, durablePath] = configPath.split(":");
  if (kind !== "scripted" || seed === undefined || bytesPath === undefined || durablePath === undefined) {
    throw new Error(`scripted worker store: dev_config ${configPath} is not scripted:<seed>:<bytes>:<durable>`);
  }
  const size = context.sizeBytes;
  const store = new ScriptedBackstore(size, sharedImage(bytesPath, size), sharedImage(durablePath, size));
  const prng = new Prng(Number(seed));
  let scheduled = false;
  const round = () => {
    scheduled = false;
    for (let runs = 1 + prng.below(4); runs > 0; runs -= 1) store.runOne(prng);
    if (store.pending.length > 0) schedule();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    defer(round);
  };
  store.onPending = schedule;
  return store;
}
