// The store `bench --isolation` gives its stalled neighbour: RAM, except that every read first
// blocks its worker's thread for STALL_MS, as a qcow2 metadata read on a slow medium would.
// Loaded by a data-plane worker through DeviceSpec.openerModule; it sits beside main.ts, and
// build.ts lists it as an entrypoint, so the compiled binary finds it (see worker-urls.ts).
// The isolation test's store (test/data-plane/slow-store.ts) stalls the same way, longer.
import { openBackstore as openStore } from "../backstores/open.ts";
import type { Backstore } from "../backstores/types.ts";
import type { DataSegments } from "./ring/data-segments.ts";

export const STALL_MS = 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Makes every read of `store` block the calling thread for `stallMs` first; returns `store`. */
export function stallReads<T extends Backstore>(store: T, stallMs: number): T {
  const read = store.read.bind(store);
  store.read = (offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number) => {
    Atomics.wait(sleeper, 0, 0, stallMs);
    return read(offsetBytes, lengthBytes, target, targetStartBytes);
  };
  return store;
}

export async function openBackstore(configPath: string, context: Parameters<typeof openStore>[1]): Promise<Backstore> {
  return stallReads(await openStore(configPath, context), STALL_MS);
}
