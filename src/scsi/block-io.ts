// READ and WRITE (6/10/12/16), SBC-3 5.13–5.16 and 5.36–5.39: the hot path. A command is
// decoded with the named field readers, checked, and handed to the backstore with the ring's own
// data segments; a synchronous backstore finishes it without a promise or an allocation.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { checkDataOut, checkLbaRange, checkNoProtection, checkTransferLength, checkWritable, writeMustBeDurable } from "./block-checks.ts";
import * as cdbFields from "./cdb.ts";
import { IoBuffer } from "./io-buffer.ts";
import { NO_TICKET } from "./lba-lock.ts";
import { readBlocks, withRange } from "./locked-io.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const READ_6 = 0x08;
export const WRITE_6 = 0x0a;
export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const READ_12 = 0xa8;
export const WRITE_12 = 0xaa;
export const READ_16 = 0x88;
export const WRITE_16 = 0x8a;

/** FUA: byte 1 bit 3 of the 10/12/16-byte forms (the 6-byte forms have none). */
const FUA_BIT = 0x08;

type Decoder = (cdb: Uint8Array) => number;

/** Where a CDB form keeps its fields, and whether it has the byte-1 flags (protect, DPO, FUA). */
interface RwLayout {
  readonly lbaOf: Decoder;
  readonly blocksOf: Decoder;
  readonly lbaAt: number;
  readonly lengthAt: number;
  readonly hasFlags: boolean;
}

const LAYOUT_6: RwLayout = { lbaOf: cdbFields.lba6, blocksOf: cdbFields.transferLength6, lbaAt: 1, lengthAt: 4, hasFlags: false };
const LAYOUT_10: RwLayout = { lbaOf: cdbFields.lba10, blocksOf: cdbFields.transferLength10, lbaAt: 2, lengthAt: 7, hasFlags: true };
const LAYOUT_12: RwLayout = { lbaOf: cdbFields.lba12, blocksOf: cdbFields.transferLength12, lbaAt: 2, lengthAt: 6, hasFlags: true };
const LAYOUT_16: RwLayout = { lbaOf: cdbFields.lba16, blocksOf: cdbFields.transferLength16, lbaAt: 2, lengthAt: 10, hasFlags: true };

function readCommand(layout: RwLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (layout.hasFlags && !checkNoProtection(device, command)) return;
    const lba = layout.lbaOf(cdb);
    const blocks = layout.blocksOf(cdb);
    if (!checkTransferLength(device, command, blocks, layout.lengthAt)) return;
    if (!checkLbaRange(device, command, lba, blocks, layout.lbaAt)) return;
    // Zero blocks: nothing read, not an error (SBC-3 5.14).
    if (blocks === 0) {
      command.dataInBytes = 0;
      return;
    }
    if (command.dataIn.totalBytes < blocks * device.blockSizeBytes) return readIntoShortBuffer(device, command, lba);
    const ticket = device.rangeLock.tryAcquire(lba, lba + blocks, false);
    if (ticket === NO_TICKET) return readAfterWaiting(device, command, lba, blocks);
    return readLocked(device, command, lba, blocks, ticket);
  };
}

/**
 * An initiator buffer shorter than the transfer (an underflow the kernel passes on) gets the
 * first bytes of the data, as many as it holds — a cut last block included, as fileio reads a
 * short length; the engine reports the residual with READ_LEN. Rare, so not on the fast path.
 */
async function readIntoShortBuffer(device: LogicalUnit, command: ScsiCommand, lba: number): Promise<void> {
  const blockSize = device.blockSizeBytes;
  const bufferBytes = command.dataIn.totalBytes;
  const wholeBlocks = Math.floor(bufferBytes / blockSize);
  const partialBytes = bufferBytes - wholeBlocks * blockSize;
  const lockedBlocks = wholeBlocks + (partialBytes > 0 ? 1 : 0);
  if (lockedBlocks === 0) {
    command.dataInBytes = 0;
    return;
  }
  try {
    await withRange(device, lba, lockedBlocks, false, async () => {
      if (wholeBlocks > 0) await readBlocks(device, lba, wholeBlocks, command.dataIn);
      if (partialBytes === 0) return;
      const lastBlock = new IoBuffer(blockSize);
      await readBlocks(device, lba + wholeBlocks, 1, lastBlock.segments);
      command.dataIn.copyFrom(lastBlock.bytes.subarray(0, partialBytes), wholeBlocks * blockSize);
    });
    command.dataInBytes = bufferBytes;
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

async function readAfterWaiting(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number): Promise<void> {
  const ticket = await device.rangeLock.acquire(lba, lba + blocks, false);
  return readLocked(device, command, lba, blocks, ticket);
}

function readLocked(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, ticket: number): IoResult {
  const lengthBytes = blocks * device.blockSizeBytes;
  let pending: IoResult;
  try {
    pending = device.backstore.read(lba * device.blockSizeBytes, lengthBytes, command.dataIn, 0);
  } catch (error) {
    device.rangeLock.release(ticket);
    device.failFromBackstore(command, error);
    return;
  }
  if (pending === undefined) {
    device.rangeLock.release(ticket);
    command.dataInBytes = lengthBytes;
    return;
  }
  return pending.then(
    () => {
      device.rangeLock.release(ticket);
      command.dataInBytes = lengthBytes;
    },
    (error: unknown) => {
      device.rangeLock.release(ticket);
      device.failFromBackstore(command, error);
    },
  );
}

function writeCommand(layout: RwLayout) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (layout.hasFlags && !checkNoProtection(device, command)) return;
    const lba = layout.lbaOf(cdb);
    const blocks = layout.blocksOf(cdb);
    if (!checkTransferLength(device, command, blocks, layout.lengthAt)) return;
    if (!checkLbaRange(device, command, lba, blocks, layout.lbaAt)) return;
    if (!checkWritable(device, command)) return;
    if (blocks === 0) return;
    if (!checkDataOut(device, command, blocks * device.blockSizeBytes)) return;
    const durable = writeMustBeDurable(device, layout.hasFlags && (cdb[1]! & FUA_BIT) !== 0);
    const ticket = device.rangeLock.tryAcquire(lba, lba + blocks, false);
    if (ticket === NO_TICKET) return writeAfterWaiting(device, command, lba, blocks, durable);
    return writeLocked(device, command, lba, blocks, durable, ticket);
  };
}

async function writeAfterWaiting(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, durable: boolean): Promise<void> {
  const ticket = await device.rangeLock.acquire(lba, lba + blocks, false);
  return writeLocked(device, command, lba, blocks, durable, ticket);
}

function writeLocked(device: LogicalUnit, command: ScsiCommand, lba: number, blocks: number, durable: boolean, ticket: number): IoResult {
  let pending: IoResult;
  try {
    pending = device.backstore.write(lba * device.blockSizeBytes, blocks * device.blockSizeBytes, command.data, 0, durable);
  } catch (error) {
    device.rangeLock.release(ticket);
    device.failFromBackstore(command, error);
    return;
  }
  if (pending === undefined) {
    device.rangeLock.release(ticket);
    return;
  }
  return pending.then(
    () => device.rangeLock.release(ticket),
    (error: unknown) => {
      device.rangeLock.release(ticket);
      device.failFromBackstore(command, error);
    },
  );
}

// CDB usage data (SPC-4 6.35): byte 1 = RDPROTECT/WRPROTECT, DPO, FUA; group numbers are not
// evaluated; the CONTROL byte's NACA bit is (rejected when set).
const rw6Usage = (opcode: number) => [opcode, 0x1f, 0xff, 0xff, 0xff, CONTROL_NACA];
const rw10Usage = (opcode: number) => [opcode, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, CONTROL_NACA];
const rw12Usage = (opcode: number) => [opcode, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, CONTROL_NACA];
const rw16Usage = (opcode: number) => [opcode, 0xf8, ...Array<number>(12).fill(0xff), 0x00, CONTROL_NACA];

const row = (opcode: number, name: string, usage: number[], execute: OpcodeRow["execute"]): OpcodeRow => ({
  opcode,
  name,
  usage,
  execute,
  mediumAccess: true,
});

export const BLOCK_IO_COMMANDS: readonly OpcodeRow[] = [
  row(READ_6, "READ(6)", rw6Usage(READ_6), readCommand(LAYOUT_6)),
  row(READ_10, "READ(10)", rw10Usage(READ_10), readCommand(LAYOUT_10)),
  row(READ_12, "READ(12)", rw12Usage(READ_12), readCommand(LAYOUT_12)),
  row(READ_16, "READ(16)", rw16Usage(READ_16), readCommand(LAYOUT_16)),
  row(WRITE_6, "WRITE(6)", rw6Usage(WRITE_6), writeCommand(LAYOUT_6)),
  row(WRITE_10, "WRITE(10)", rw10Usage(WRITE_10), writeCommand(LAYOUT_10)),
  row(WRITE_12, "WRITE(12)", rw12Usage(WRITE_12), writeCommand(LAYOUT_12)),
  row(WRITE_16, "WRITE(16)", rw16Usage(WRITE_16), writeCommand(LAYOUT_16)),
];
