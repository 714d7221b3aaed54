// A store for the isolation test: RAM, except that every read first blocks its thread for
// SLOW_READ_MS, as a qcow2 image on a slow medium blocks in a metadata pread (the stall of
// `bench --isolation`, longer). Loaded by a data-plane worker through DeviceSpec.openerModule.
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../../backstores/types.ts";
import { stallReads } from "../../src/bench-stalling-store.ts";

export const SLOW_READ_MS = 200;

export async function openBackstore(_configPath: string, context: { sizeBytes: number }): Promise<Backstore> {
  return stallReads(new RamBackstore(context.sizeBytes), SLOW_READ_MS);
}
