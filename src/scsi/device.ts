// A SCSI logical unit: the executor the ring engine hands commands to. It looks the CDB up in the
// opcode table and runs the row; it owns the unit's state (mode parameters, pending sense) and
// turns backstore failures into sense.
import { BackstoreError, type Backstore, type IoResult } from "../../backstores/types.ts";
import { NO_DATA_IN, SAM_STAT_TASK_ABORTED, type ScsiCommand } from "../ring/command.ts";
import type { CommandExecutor } from "../ring/engine.ts";
import { ALL_COMMANDS } from "./commands.ts";
import * as sense from "./sense.ts";
import { OpcodeTable, SERVICE_ACTION_OPCODES } from "./table.ts";

export interface ScsiIdentity {
  /** T10 vendor identification, 8 ASCII characters at most. */
  vendor: string;
  /** Product identification, 16 at most. */
  product: string;
  /** Product revision level, 4 at most. */
  revision: string;
  /** Unit serial number (VPD 0x80), from configfs wwn/vpd_unit_serial when there is one. */
  unitSerial: string;
}

export interface ScsiDeviceConfig {
  name: string;
  blockSizeBytes: number;
  /** dev_size: the capacity is floor(sizeBytes / blockSizeBytes) blocks. */
  sizeBytes: number;
  /** hw_max_sectors: the largest transfer in one command, in blocks. */
  maxTransferBlocks: number;
  writeCacheEnabled: boolean;
  identity: ScsiIdentity;
}

export const DEFAULT_IDENTITY: ScsiIdentity = {
  vendor: "LIO-ORG",
  product: "tcmu-appliance",
  revision: "0001",
  unitSerial: "",
};

/** Response data is built here, then copied into the Data-In buffer (INQUIRY, MODE SENSE…). */
export const RESPONSE_SCRATCH_BYTES = 64 * 1024;

const SHARED_TABLE = new OpcodeTable(ALL_COMMANDS);

export class ScsiDevice implements CommandExecutor {
  readonly backstore: Backstore;
  readonly config: ScsiDeviceConfig;
  readonly table: OpcodeTable;
  readonly scratch = new Uint8Array(RESPONSE_SCRATCH_BYTES);
  /** Control mode page D_SENSE: descriptor-format sense when true. */
  descriptorSense = false;
  writeCacheEnabled: boolean;

  constructor(backstore: Backstore, config: ScsiDeviceConfig, table: OpcodeTable = SHARED_TABLE) {
    if (!Number.isInteger(config.blockSizeBytes) || config.blockSizeBytes < 512 || config.blockSizeBytes % 512 !== 0) {
      throw new Error(`block size ${config.blockSizeBytes} is not a multiple of 512`);
    }
    this.backstore = backstore;
    this.config = config;
    this.table = table;
    this.writeCacheEnabled = config.writeCacheEnabled;
  }

  get blockSizeBytes(): number {
    return this.config.blockSizeBytes;
  }

  get capacityBlocks(): number {
    return Math.floor(this.config.sizeBytes / this.config.blockSizeBytes);
  }

  execute(command: ScsiCommand): IoResult {
    if (command.aborted) {
      command.status = SAM_STAT_TASK_ABORTED;
      return;
    }
    const row = this.table.lookup(command.cdb);
    if (row === undefined) {
      const knownOpcode = SERVICE_ACTION_OPCODES.has(command.opcode) && this.table.hasOpcode(command.opcode);
      if (knownOpcode) this.fail(command, sense.INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
      else this.fail(command, sense.INVALID_COMMAND_OPERATION_CODE, { field: { inCdb: true, byte: 0 } });
      return;
    }
    return row.execute(this, command);
  }

  failInternally(command: ScsiCommand): void {
    command.dataInBytes = NO_DATA_IN;
    this.fail(command, sense.INTERNAL_TARGET_FAILURE);
  }

  fail(command: ScsiCommand, reason: sense.SenseReason, details?: sense.SenseDetails): void {
    command.dataInBytes = NO_DATA_IN;
    sense.checkCondition(command, reason, this.descriptorSense, details);
  }

  /** Replies with `lengthBytes` of `this.scratch`, cut to the allocation length. */
  replyScratch(command: ScsiCommand, lengthBytes: number, allocationLengthBytes: number): void {
    const length = Math.min(lengthBytes, allocationLengthBytes, command.dataIn.totalBytes);
    command.dataIn.copyFrom(this.scratch.subarray(0, length));
    command.dataInBytes = length;
  }

  /** Turns a backstore failure into sense; anything else is our bug and is rethrown. */
  failFromBackstore(command: ScsiCommand, error: unknown): void {
    if (!(error instanceof BackstoreError)) throw error;
    const lba = Math.floor(error.offsetBytes / this.blockSizeBytes);
    switch (error.kind) {
      case "read":
        return this.fail(command, sense.UNRECOVERED_READ_ERROR, { information: lba });
      case "write":
        return this.fail(command, sense.WRITE_ERROR, { information: lba });
      case "no-space":
        return this.fail(command, sense.SPACE_ALLOCATION_FAILED_WRITE_PROTECT, { information: lba });
      case "write-protected":
        return this.fail(command, sense.WRITE_PROTECTED);
      case "unsupported":
        return this.fail(command, sense.INVALID_COMMAND_OPERATION_CODE, { field: { inCdb: true, byte: 0 } });
    }
  }

  /**
   * Runs a backstore operation and settles the command either way: `onSuccess` runs after it,
   * a BackstoreError becomes sense. Sync operations stay sync (no promise on the fast path).
   */
  runIo(command: ScsiCommand, operation: () => IoResult, onSuccess?: () => void): IoResult {
    let pending: IoResult;
    try {
      pending = operation();
    } catch (error) {
      this.failFromBackstore(command, error);
      return;
    }
    if (pending === undefined) {
      onSuccess?.();
      return;
    }
    return pending.then(
      () => onSuccess?.(),
      (error: unknown) => this.failFromBackstore(command, error),
    );
  }
}
