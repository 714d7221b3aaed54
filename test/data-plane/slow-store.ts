// A store for the isolation test: RAM, except that every read first blocks its thread for
// SLOW_READ_MS, as a qcow2 image on a slow medium blocks in a metadata pread. Loaded by a
// data-plane worker through DeviceSpec.openerModule.
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../../backstores/types.ts";
import type { DataSegments } from "../../src/ring/data-segments.ts";

export const SLOW_READ_MS = 200;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export async function openBackstore(_configPath: string, context: { sizeBytes: number }): Promise<Backstore> {
  const store = new RamBackstore(context.sizeBytes);
  const read = store.read.bind(store);
  store.read = (offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number) => {
    Atomics.wait(sleeper, 0, 0, SLOW_READ_MS);
    return read(offsetBytes, lengthBytes, target, targetStartBytes);
  };
  return store;
}
