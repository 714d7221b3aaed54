// SYNCHRONIZE CACHE (10)/(16) and PRE-FETCH (10)/(16), SBC-3 5.22–5.23 and 5.8–5.9: commands
// about the cache rather than the data. Both check their range like any medium access.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { checkLbaRange } from "./block-checks.ts";
import { cdbU16, cdbU32, cdbU64 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const SYNCHRONIZE_CACHE_10 = 0x35;
export const SYNCHRONIZE_CACHE_16 = 0x91;
export const PRE_FETCH_10 = 0x34;
export const PRE_FETCH_16 = 0x90;

interface RangeLayout {
  readonly lbaOf: (cdb: Uint8Array) => number;
  readonly blocksOf: (cdb: Uint8Array) => number;
}

const LAYOUT_10: RangeLayout = { lbaOf: (cdb) => cdbU32(cdb, 2), blocksOf: (cdb) => cdbU16(cdb, 7) };
const LAYOUT_16: RangeLayout = { lbaOf: (cdb) => cdbU64(cdb, 2), blocksOf: (cdb) => cdbU32(cdb, 10) };
const LBA_AT = 2;

/**
 * SBC-3 5.22: NUMBER OF LOGICAL BLOCKS 0 means "to the end of the medium". The backstore flushes
 * as a whole (fdatasync has no range worth the bookkeeping). IMMED may return early; the flush
 * is done before status either way, which is what IMMED=0 asks and IMMED=1 permits.
 */
function synchronizeCache(layout: RangeLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const lba = layout.lbaOf(command.cdb);
    if (!checkLbaRange(device, command, lba, layout.blocksOf(command.cdb), LBA_AT)) return;
    let pending: IoResult;
    try {
      pending = device.backstore.flush();
    } catch (error) {
      device.failFromBackstore(command, error);
      return;
    }
    if (pending === undefined) return;
    return pending.then(undefined, (error: unknown) => device.failFromBackstore(command, error));
  };
}

/**
 * SBC-3 5.8: a hint to bring blocks into cache. Every backstore here reads straight from its
 * store (or the host page cache), so there is nothing to load: GOOD is the answer SBC-3 gives
 * for "the cache could not take them all", and CONDITION MET, which some initiators treat as an
 * error, is never returned. PREFETCH LENGTH 0 means to the end of the medium.
 */
function preFetch(layout: RangeLayout) {
  return (device: LogicalUnit, command: ScsiCommand): void => {
    checkLbaRange(device, command, layout.lbaOf(command.cdb), layout.blocksOf(command.cdb), LBA_AT);
  };
}

export const CACHE_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: SYNCHRONIZE_CACHE_10,
    name: "SYNCHRONIZE CACHE(10)",
    usage: [SYNCHRONIZE_CACHE_10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: synchronizeCache(LAYOUT_10),
    mediumAccess: true,
  },
  {
    opcode: SYNCHRONIZE_CACHE_16,
    name: "SYNCHRONIZE CACHE(16)",
    usage: [SYNCHRONIZE_CACHE_16, 0x02, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA],
    execute: synchronizeCache(LAYOUT_16),
    mediumAccess: true,
  },
  {
    opcode: PRE_FETCH_10,
    name: "PRE-FETCH(10)",
    usage: [PRE_FETCH_10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA],
    execute: preFetch(LAYOUT_10),
    mediumAccess: true,
  },
  {
    opcode: PRE_FETCH_16,
    name: "PRE-FETCH(16)",
    usage: [PRE_FETCH_16, 0x02, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA],
    execute: preFetch(LAYOUT_16),
    mediumAccess: true,
  },
];
