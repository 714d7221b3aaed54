// A SCSI logical unit: the executor the ring engine hands commands to. It looks the CDB up in the
// opcode table and runs the row; it owns the unit's state (mode parameters, unit attentions,
// started/stopped, the LBA range lock) and turns backstore failures into sense. Commands see it
// only as a LogicalUnit, and other devices' EXTENDED COPY only as a CopyUnit (logical-unit.ts),
// so no command file imports this one.
import { BackstoreError, type Backstore, type IoResult } from "../../backstores/types.ts";
import { NO_DATA_IN, SAM_STAT_TASK_ABORTED, type ScsiCommand } from "../ring/command.ts";
import type { DataSegments } from "../ring/data-segments.ts";
import type { CommandExecutor } from "../ring/engine.ts";
import { accessRefusal } from "./alua-access.ts";
import { AluaState, type AluaConfig } from "./alua.ts";
import { ALL_COMMANDS } from "./commands.ts";
import { PROCESS_DEVICE_REGISTRY, type DeviceRegistry } from "./device-registry.ts";
import { naaDesignator, naaKey, unitSerialFor } from "./identity.ts";
import { LbaRangeLock } from "./lba-lock.ts";
import { withLockedRange } from "./locked-io.ts";
import type { LogicalUnit, OpcodeRow } from "./logical-unit.ts";
import * as sense from "./sense.ts";
import { CONTROL_NACA, OpcodeTable, SERVICE_ACTION_OPCODES } from "./table.ts";

export interface ScsiIdentity {
  /** T10 vendor identification, 8 ASCII characters at most. */
  vendor: string;
  /** Product identification, 16 at most. */
  product: string;
  /** Product revision level, 4 at most. */
  revision: string;
  /**
   * Unit serial number (VPD 0x80), from configfs wwn/vpd_unit_serial. Empty: one is derived from
   * the device name (stable across restarts). The NAA designator (VPD 0x83) follows from it.
   */
  unitSerial: string;
}

export interface ScsiDeviceConfig {
  name: string;
  blockSizeBytes: number;
  /** dev_size: the capacity is floor(sizeBytes / blockSizeBytes) blocks. */
  sizeBytes: number;
  /**
   * The largest transfer one command may carry, in blocks (VPD B0 MAXIMUM TRANSFER LENGTH): what
   * the ring's data area holds, since the kernel refuses anything larger before we see it.
   */
  maxTransferBlocks: number;
  /** hw_max_sectors: the transfer the device prefers (OPTIMAL TRANSFER LENGTH); default the maximum. */
  optimalTransferBlocks?: number;
  /** emulate_write_cache: WCE at start and the caching mode page's default value. */
  writeCacheEnabled: boolean;
  identity: ScsiIdentity;
  /** Logical blocks per physical block, as a power of two (READ CAPACITY(16)); default 0. */
  physicalBlockExponent?: number;
  /** First LBA aligned to a physical block (READ CAPACITY(16)); default 0. */
  lowestAlignedLba?: number;
  /** D_SENSE at start (descriptor-format sense); default false. */
  descriptorSense?: boolean;
  /** Told when MODE SELECT changes WCE, so the control plane can mirror it (emulate_write_cache). */
  onWriteCacheChange?: (enabled: boolean) => void;
  /** Where EXTENDED COPY finds other devices by NAA; default: every device of this process. */
  registry?: DeviceRegistry;
  /** Target port groups (docs/ha.md), from configfs at attach; absent: no ALUA (TPGS 0). */
  alua?: AluaConfig;
}

export const DEFAULT_IDENTITY: ScsiIdentity = {
  vendor: "LIO-ORG",
  product: "tcmu-appliance",
  revision: "0001",
  unitSerial: "",
};

/** Response data is built here, then copied into the Data-In buffer (INQUIRY, MODE SENSE…). */
export const RESPONSE_SCRATCH_BYTES = 64 * 1024;
/** Parameter lists (MODE SELECT, UNMAP, EXTENDED COPY) are copied out of Data-Out into this. */
export const PARAMETER_SCRATCH_BYTES = 64 * 1024;
/** Unit attentions kept pending at most; older duplicates are not queued twice. */
export const UNIT_ATTENTIONS_MAX = 8;

const SHARED_TABLE = new OpcodeTable(ALL_COMMANDS);

export class ScsiDevice implements CommandExecutor, LogicalUnit {
  readonly backstore: Backstore;
  readonly config: ScsiDeviceConfig;
  readonly table: OpcodeTable;
  readonly scratch = new Uint8Array(RESPONSE_SCRATCH_BYTES);
  readonly parameterScratch = new Uint8Array(PARAMETER_SCRATCH_BYTES);
  /** COMPARE AND WRITE takes its range exclusively; every other data command shares. */
  readonly rangeLock = new LbaRangeLock();
  readonly unitSerial: string;
  /** NAA IEEE Registered Extended designator (VPD 0x83), 16 bytes. */
  readonly naa: Uint8Array;
  readonly naaKey: string;
  /** Control mode page D_SENSE: descriptor-format sense when true. */
  descriptorSense: boolean;
  /** Caching mode page WCE: false makes every write durable before its status. */
  writeCacheEnabled: boolean;
  /** START STOP UNIT with START=0 stops the unit until START=1 (SBC-3 5.25). */
  stopped = false;
  /** ALUA states, from config.alua and the backstore's medium lock; undefined without ALUA. */
  readonly alua: AluaState | undefined;
  #sizeBytes: number;
  readonly #unitAttentions: sense.SenseReason[] = [];
  readonly #registry: DeviceRegistry;
  #closed = false;

  constructor(backstore: Backstore, config: ScsiDeviceConfig, table: OpcodeTable = SHARED_TABLE) {
    if (!Number.isInteger(config.blockSizeBytes) || config.blockSizeBytes < 512 || config.blockSizeBytes % 512 !== 0) {
      throw new Error(`block size ${config.blockSizeBytes} is not a multiple of 512`);
    }
    if (!Number.isInteger(config.maxTransferBlocks) || config.maxTransferBlocks < 1) {
      throw new Error(`maximum transfer length ${config.maxTransferBlocks} must be a positive integer`);
    }
    this.backstore = backstore;
    this.config = config;
    this.table = table;
    this.#sizeBytes = config.sizeBytes;
    this.writeCacheEnabled = config.writeCacheEnabled;
    this.descriptorSense = config.descriptorSense ?? false;
    this.unitSerial = unitSerialFor(config.identity.unitSerial, config.name);
    this.naa = naaDesignator(this.unitSerial);
    this.naaKey = naaKey(this.naa);
    this.alua = config.alua === undefined ? undefined : new AluaState(config.alua, backstore.ownership);
    if (this.alua !== undefined) this.alua.onImplicitChange = (reason) => this.raiseUnitAttention(reason);
    this.#registry = config.registry ?? PROCESS_DEVICE_REGISTRY;
    this.#registry.register(this.naaKey, this);
  }

  get blockSizeBytes(): number {
    return this.config.blockSizeBytes;
  }

  get capacityBlocks(): number {
    return Math.floor(this.#sizeBytes / this.config.blockSizeBytes);
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A read-only backstore: writes get WRITE PROTECTED, and EXTENDED COPY will not write here. */
  get writeProtected(): boolean {
    return this.backstore.capabilities.readOnly;
  }

  get registry(): DeviceRegistry {
    return this.#registry;
  }

  get pendingUnitAttentions(): readonly sense.SenseReason[] {
    return this.#unitAttentions;
  }

  /**
   * Queues a unit attention (SAM-5 5.14): the next command other than INQUIRY, REPORT LUNS and
   * REQUEST SENSE gets CHECK CONDITION with it, once; REQUEST SENSE returns and clears it.
   */
  raiseUnitAttention(reason: sense.SenseReason): void {
    if (reason.key !== sense.SENSE_KEY_UNIT_ATTENTION) throw new Error(`${reason.name} is not a unit attention`);
    if (this.#unitAttentions.includes(reason)) return;
    if (this.#unitAttentions.length === UNIT_ATTENTIONS_MAX) this.#unitAttentions.shift();
    this.#unitAttentions.push(reason);
  }

  /** Takes the oldest pending unit attention, if any. */
  takeUnitAttention(): sense.SenseReason | undefined {
    return this.#unitAttentions.shift();
  }

  /** dev_size changed (RECONFIG_DEVICE): new capacity, and CAPACITY DATA HAS CHANGED (SBC-3 4.10). */
  resize(sizeBytes: number): void {
    if (sizeBytes === this.#sizeBytes) return;
    this.#sizeBytes = sizeBytes;
    this.raiseUnitAttention(sense.CAPACITY_DATA_HAS_CHANGED);
  }

  /** Runs `work` while holding [lba, lba + blocks) of this unit's range lock (CopyUnit). */
  withRange<T>(lba: number, blocks: number, exclusive: boolean, work: () => Promise<T>): Promise<T> {
    return withLockedRange(this.rangeLock, lba, blocks, exclusive, work);
  }

  /** Block read with no lock taken (CopyUnit); the caller holds the range. */
  readBlocks(lba: number, blocks: number, target: DataSegments, targetStartBytes: number): IoResult {
    const blockSize = this.blockSizeBytes;
    return this.backstore.read(lba * blockSize, blocks * blockSize, target, targetStartBytes);
  }

  /** Block write with no lock taken (CopyUnit); the caller holds the range. */
  writeBlocks(lba: number, blocks: number, source: DataSegments, sourceStartBytes: number, durable: boolean): IoResult {
    const blockSize = this.blockSizeBytes;
    return this.backstore.write(lba * blockSize, blocks * blockSize, source, sourceStartBytes, durable);
  }

  /** Leaves the device registry: EXTENDED COPY can no longer name this unit. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#registry.unregister(this.naaKey, this);
  }

  /**
   * The checks every command goes through, in SAM-5's order: a pending unit attention first
   * (5.14: reported to any command but INQUIRY, REPORT LUNS, REQUEST SENSE — unknown opcodes
   * included), then whether the command exists here, the CONTROL byte, the ALUA access state
   * (SPC-4 5.15.2) and the unit's state; then the row decodes and runs it. A unit without ALUA,
   * or active with the medium's lock in hand, pays one field check for ALUA.
   */
  execute(command: ScsiCommand): IoResult {
    if (command.aborted) {
      command.status = SAM_STAT_TASK_ABORTED;
      return;
    }
    const cdb = command.cdb;
    const row = this.table.lookup(cdb);
    if (this.#unitAttentions.length > 0 && row?.ignoresUnitAttention !== true) {
      this.fail(command, this.#unitAttentions.shift()!);
      return;
    }
    if (row === undefined || (row.supported !== undefined && !row.supported(this))) {
      // A wrong service action of an opcode this unit serves is a bad field; an opcode none of
      // whose rows this unit serves (MAINTENANCE OUT without ALUA) is unknown altogether.
      const knownOpcode = SERVICE_ACTION_OPCODES.has(command.opcode) && this.#servesOpcode(command.opcode);
      if (knownOpcode) this.fail(command, sense.INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
      else this.fail(command, sense.INVALID_COMMAND_OPERATION_CODE, { field: { inCdb: true, byte: 0 } });
      return;
    }
    const controlByte = row.usage.length - 1;
    if ((cdb[controlByte]! & CONTROL_NACA) !== 0) {
      this.fail(command, sense.INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: controlByte, bit: 2 } });
      return;
    }
    const alua = this.alua;
    if (alua !== undefined && !alua.settled) return this.#executeUnderAlua(alua, row, command);
    return this.#run(row, command);
  }

  #run(row: OpcodeRow, command: ScsiCommand): IoResult {
    if (this.stopped && row.mediumAccess === true) {
      this.fail(command, sense.NOT_READY_INITIALIZING_COMMAND_REQUIRED);
      return;
    }
    return row.execute(this, command);
  }

  /**
   * SPC-4 5.15.2: a standby, unavailable or transitioning group answers only what its state
   * allows (alua.ts), and the rest never reaches a handler or the backstore. A write on a
   * gateway without the medium's lock takes it first; reads run without it (docs/ha.md).
   */
  #executeUnderAlua(alua: AluaState, row: OpcodeRow, command: ScsiCommand): IoResult {
    const refusal = accessRefusal(alua.localState, command.cdb);
    if (refusal !== undefined) {
      this.fail(command, refusal);
      return;
    }
    if (this.stopped || !alua.acquiresFor(row.opcode)) return this.#run(row, command);
    return this.#acquireThenRun(alua, row, command);
  }

  async #acquireThenRun(alua: AluaState, row: OpcodeRow, command: ScsiCommand): Promise<void> {
    try {
      await alua.acquireImplicitly();
    } catch (error) {
      // A live gateway owns the lock: not done. Its I/O only comes here after the optimized path
      // failed, so the lock is usually on its way (a dead owner's watch expiring): TRANSITION,
      // which Linux retries on this path. A gateway fenced by the owner says UNAVAILABLE instead.
      if (error instanceof BackstoreError && error.kind === "unavailable") return this.fail(command, fencedOrTransition(alua));
      return this.failFromBackstore(command, error);
    }
    await this.#run(row, command);
  }

  /** Whether some row of `opcode` exists on this unit (its `supported` says yes); error path only. */
  #servesOpcode(opcode: number): boolean {
    if (!this.table.hasOpcode(opcode)) return false;
    return this.table.rows.some((row) => row.opcode === opcode && (row.supported === undefined || row.supported(this)));
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

  /**
   * Copies the first `lengthBytes` of Data-Out (a parameter list) into parameterScratch and
   * returns that view, or undefined when Data-Out is shorter (the caller decides the sense).
   * The view is only valid until the next command runs: parse it before any await.
   */
  parameterList(command: ScsiCommand, lengthBytes: number): Uint8Array | undefined {
    if (lengthBytes > command.data.totalBytes || lengthBytes > PARAMETER_SCRATCH_BYTES) return undefined;
    const view = this.parameterScratch.subarray(0, lengthBytes);
    command.data.copyTo(view);
    return view;
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
      case "unreachable":
        return this.fail(command, sense.COPY_TARGET_DEVICE_NOT_REACHABLE);
      case "unavailable":
        // A gateway whose lock another one broke (fenced: the cluster refuses its writes) says
        // TARGET PORT IN UNAVAILABLE STATE, which makes Linux fail the path and move the command
        // to the new owner at once. TRANSITION and BECOMING READY are retried on the same path,
        // for up to 180 s: the real-kernel switch-back test stalled exactly that long.
        if (this.alua?.fenced === true) return this.fail(command, sense.NOT_READY_TARGET_PORT_UNAVAILABLE);
        return this.fail(command, sense.NOT_READY_BECOMING_READY);
      default:
        return assertNever(error.kind);
    }
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected backstore error kind ${String(value)}`);
}

/** The sense of a write refused for want of the medium's lock (docs/ha.md). */
function fencedOrTransition(alua: AluaState): sense.SenseReason {
  return alua.fenced ? sense.NOT_READY_TARGET_PORT_UNAVAILABLE : sense.NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION;
}
