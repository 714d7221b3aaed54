// Block commands (SBC-3): capacity and the READ/WRITE family.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import * as cdbFields from "./cdb.ts";
import { cdbU32, putU32, putU64 } from "./cdb.ts";
import type { ScsiDevice } from "./device.ts";
import { INVALID_FIELD_IN_CDB, LBA_OUT_OF_RANGE, WRITE_PROTECTED } from "./sense.ts";
import type { OpcodeRow } from "./table.ts";

export const READ_6 = 0x08;
export const WRITE_6 = 0x0a;
export const READ_CAPACITY_10 = 0x25;
export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const READ_12 = 0xa8;
export const WRITE_12 = 0xaa;
export const READ_16 = 0x88;
export const WRITE_16 = 0x8a;
export const SERVICE_ACTION_IN_16 = 0x9e;
export const SAI_READ_CAPACITY_16 = 0x10;

const READ_CAPACITY_16_BYTES = 32;

/** LBA + blocks must stay within the capacity; INFORMATION carries the LBA (SBC-3 4.5). */
export function checkLbaRange(device: ScsiDevice, command: ScsiCommand, lba: number, blocks: number): boolean {
  if (lba <= device.capacityBlocks && blocks <= device.capacityBlocks - lba) return true;
  device.fail(command, LBA_OUT_OF_RANGE, { information: Number.isFinite(lba) ? lba : 0xffff_ffff_ffff_ffff });
  return false;
}

function readCapacity10(device: ScsiDevice, command: ScsiCommand): void {
  const data = device.scratch;
  // SBC-3 5.16: a capacity past 2^32 blocks reports 0xFFFFFFFF so the initiator uses (16).
  putU32(data, 0, Math.min(device.capacityBlocks - 1, 0xffff_ffff));
  putU32(data, 4, device.blockSizeBytes);
  device.replyScratch(command, 8, 8);
}

function readCapacity16(device: ScsiDevice, command: ScsiCommand): void {
  const data = device.scratch;
  const capabilities = device.backstore.capabilities;
  data.fill(0, 0, READ_CAPACITY_16_BYTES);
  putU64(data, 0, device.capacityBlocks - 1);
  putU32(data, 8, device.blockSizeBytes);
  // LBPME: UNMAP really deallocates; LBPRZ: deallocated blocks read zeros.
  data[14] = (capabilities.unmap ? 0x80 : 0) | (capabilities.unmap && capabilities.unmapReadsZeroes ? 0x40 : 0);
  device.replyScratch(command, READ_CAPACITY_16_BYTES, cdbU32(command.cdb, 10));
}

type Decoder = (cdb: Uint8Array) => number;

function readCommand(lbaOf: Decoder, blocksOf: Decoder, protectByte: number | undefined) {
  return (device: ScsiDevice, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (protectByte !== undefined && (cdb[protectByte]! & 0xe0) !== 0) {
      // RDPROTECT: no protection information on this unit (SBC-3 5.14).
      return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: protectByte, bit: 7 } });
    }
    const lba = lbaOf(cdb);
    const blocks = blocksOf(cdb);
    if (!checkLbaRange(device, command, lba, blocks)) return;
    const target = command.dataIn;
    const lengthBytes = Math.min(blocks * device.blockSizeBytes, target.totalBytes);
    if (lengthBytes === 0) {
      command.dataInBytes = 0;
      return;
    }
    return device.runIo(
      command,
      () => device.backstore.read(lba * device.blockSizeBytes, lengthBytes, target, 0),
      () => {
        command.dataInBytes = lengthBytes;
      },
    );
  };
}

function writeCommand(lbaOf: Decoder, blocksOf: Decoder, protectByte: number | undefined) {
  return (device: ScsiDevice, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    if (protectByte !== undefined && (cdb[protectByte]! & 0xe0) !== 0) {
      return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: protectByte, bit: 7 } });
    }
    const lba = lbaOf(cdb);
    const blocks = blocksOf(cdb);
    if (!checkLbaRange(device, command, lba, blocks)) return;
    if (device.backstore.capabilities.readOnly) return device.fail(command, WRITE_PROTECTED);
    const source = command.data;
    const lengthBytes = Math.min(blocks * device.blockSizeBytes, source.totalBytes);
    if (lengthBytes === 0) return;
    // FUA (byte 1 bit 3) or a disabled write cache: durable before status.
    const durable = (protectByte !== undefined && (cdb[1]! & 0x08) !== 0) || !device.writeCacheEnabled;
    return device.runIo(command, () => device.backstore.write(lba * device.blockSizeBytes, lengthBytes, source, 0, durable));
  };
}

const rw6Usage = (opcode: number) => [opcode, 0x1f, 0xff, 0xff, 0xff, 0x07];
const rw10Usage = (opcode: number) => [opcode, 0xfa, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, 0x07];
const rw12Usage = (opcode: number) => [opcode, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x07];
const rw16Usage = (opcode: number) => [opcode, 0xfa, ...Array(12).fill(0xff), 0x3f, 0x07];

export const BLOCK_COMMANDS: readonly OpcodeRow[] = [
  { opcode: READ_CAPACITY_10, name: "READ CAPACITY(10)", usage: [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0x07], execute: readCapacity10 },
  {
    opcode: SERVICE_ACTION_IN_16,
    serviceAction: SAI_READ_CAPACITY_16,
    name: "READ CAPACITY(16)",
    usage: [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x07],
    execute: readCapacity16,
  },
  { opcode: READ_6, name: "READ(6)", usage: rw6Usage(READ_6), execute: readCommand(cdbFields.lba6, cdbFields.transferLength6, undefined) },
  { opcode: READ_10, name: "READ(10)", usage: rw10Usage(READ_10), execute: readCommand(cdbFields.lba10, cdbFields.transferLength10, 1) },
  { opcode: READ_12, name: "READ(12)", usage: rw12Usage(READ_12), execute: readCommand(cdbFields.lba12, cdbFields.transferLength12, 1) },
  { opcode: READ_16, name: "READ(16)", usage: rw16Usage(READ_16), execute: readCommand(cdbFields.lba16, cdbFields.transferLength16, 1) },
  { opcode: WRITE_6, name: "WRITE(6)", usage: rw6Usage(WRITE_6), execute: writeCommand(cdbFields.lba6, cdbFields.transferLength6, undefined) },
  { opcode: WRITE_10, name: "WRITE(10)", usage: rw10Usage(WRITE_10), execute: writeCommand(cdbFields.lba10, cdbFields.transferLength10, 1) },
  { opcode: WRITE_12, name: "WRITE(12)", usage: rw12Usage(WRITE_12), execute: writeCommand(cdbFields.lba12, cdbFields.transferLength12, 1) },
  { opcode: WRITE_16, name: "WRITE(16)", usage: rw16Usage(WRITE_16), execute: writeCommand(cdbFields.lba16, cdbFields.transferLength16, 1) },
];
