// What a command may see of the logical unit that runs it, and what EXTENDED COPY may see of
// another unit. Command handlers take these interfaces, not the ScsiDevice class: the command
// files then depend on no device code (device.ts imports the command table, so a handler that
// imported device.ts closed an import cycle through every file of src/scsi), and a copy peer can
// be a proxy for a device served on another thread. Types only; from src/scsi this file imports
// nothing but sense types, so it can never be part of a cycle.
import type { Backstore, IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import type { DataSegments } from "../ring/data-segments.ts";
import type { SenseDetails, SenseReason } from "./sense.ts";

/**
 * A unit as the copy manager uses it when it is the source or destination of EXTENDED COPY
 * (extended-copy.ts): found by NAA, checked, then read and written chunk by chunk under its own
 * LBA range lock. Everything is a property read or a method call, so a proxy for a device on
 * another thread can implement it; reads and writes fail as the backstore's do (BackstoreError,
 * thrown or rejected), which the receiving unit turns into sense.
 */
export interface CopyUnit {
  /** The NAA designator of VPD 0x83 in hex (identity.ts naaKey): how a copy names the unit. */
  readonly naaKey: string;
  readonly blockSizeBytes: number;
  readonly capacityBlocks: number;
  /** Left the registry (close()): no longer a copy target. */
  readonly closed: boolean;
  /** Stopped by START STOP UNIT: no longer a copy target until started. */
  readonly stopped: boolean;
  /** The backstore is read-only: refused as a copy destination (WRITE PROTECTED). */
  readonly writeProtected: boolean;
  /** Caching mode page WCE: false makes every write to this unit durable before its status. */
  readonly writeCacheEnabled: boolean;
  /** Runs `work` while holding [lba, lba + blocks) of this unit's LBA range lock. */
  withRange<T>(lba: number, blocks: number, exclusive: boolean, work: () => Promise<T>): Promise<T>;
  /** Reads `blocks` blocks at `lba` into `target` from byte `targetStartBytes`; takes no lock. */
  readBlocks(lba: number, blocks: number, target: DataSegments, targetStartBytes: number): IoResult;
  /** Writes `blocks` blocks at `lba` from `source` at byte `sourceStartBytes`; takes no lock. */
  writeBlocks(lba: number, blocks: number, source: DataSegments, sourceStartBytes: number, durable: boolean): IoResult;
}

/** Where EXTENDED COPY finds other units (device-registry.ts): the unique one, or undefined. */
export interface CopyUnitLookup {
  find(naaKey: string): CopyUnit | undefined;
}

/** The LBA range lock (lba-lock.ts LbaRangeLock), as the block commands use it. */
export interface RangeLock {
  /** Takes [startLba, endLba) now if nothing conflicts; returns a ticket or NO_TICKET. */
  tryAcquire(startLba: number, endLba: number, exclusive: boolean): number;
  /** Takes the range, waiting behind conflicting holders and earlier conflicting waiters. */
  acquire(startLba: number, endLba: number, exclusive: boolean): Promise<number>;
  release(ticket: number): void;
}

/** The configured values commands report or fall back to (ScsiDeviceConfig has them all). */
export interface UnitSettings {
  /** What one command may transfer, in blocks (VPD B0, transfer length checks). */
  readonly maxTransferBlocks: number;
  /** hw_max_sectors, in blocks (VPD B0 OPTIMAL TRANSFER LENGTH); absent: the maximum. */
  readonly optimalTransferBlocks?: number;
  /** emulate_write_cache: the caching mode page's default WCE. */
  readonly writeCacheEnabled: boolean;
  /** The control mode page's default D_SENSE; absent: false. */
  readonly descriptorSense?: boolean;
  /** Logical blocks per physical block, as a power of two; absent: 0. */
  readonly physicalBlockExponent?: number;
  /** First LBA aligned to a physical block; absent: 0. */
  readonly lowestAlignedLba?: number;
  /** INQUIRY and VPD 0x83 text. */
  readonly identity: { readonly vendor: string; readonly product: string; readonly revision: string };
  /** Told when MODE SELECT changes WCE. */
  readonly onWriteCacheChange?: (enabled: boolean) => void;
}

/** The commands a unit serves (table.ts OpcodeTable), for INQUIRY and REPORT SUPPORTED OPCODES. */
export interface CommandCatalog {
  readonly rows: readonly OpcodeRow[];
  rowFor(opcode: number, serviceAction: number): OpcodeRow | undefined;
}

/**
 * SPC-4 5.15.2: the target port asymmetric access states a group is reported in. The type lives
 * here, with the unit, so LogicalUnit can name the ALUA state without importing alua.ts (which
 * re-exports it with the rest of the ALUA types).
 */
export type AluaAccessState = "active-optimized" | "active-non-optimized" | "standby" | "unavailable" | "transitioning";

/** One target port group as REPORT TARGET PORT GROUPS describes it (SPC-4 6.37). */
export interface TargetPortGroupStatus {
  /** TARGET PORT GROUP, and the relative target port identifier of its one port. */
  readonly id: number;
  readonly state: AluaAccessState;
  /** PREF: the configured preference. */
  readonly preferred: boolean;
  /** STATUS CODE (SPC-4 table 170): 0 none, 1 altered by SET TARGET PORT GROUPS, 2 implicitly. */
  readonly statusCode: number;
}

/** One descriptor of SET TARGET PORT GROUPS, decoded and checked (a known group, a settable state). */
export interface TargetPortGroupChange {
  readonly id: number;
  readonly state: AluaAccessState;
}

/**
 * A unit's ALUA as its commands see it (alua.ts AluaState implements it): INQUIRY, VPD 0x83 and
 * the target port group commands read and change it through these members only.
 */
export interface UnitAlua {
  /** This gateway's target port group; its one port's relative target port identifier too. */
  readonly localGroupId: number;
  /** PROTOCOL IDENTIFIER of the target port designators (SPC-4 7.6.1). */
  readonly protocolIdentifier: number;
  /** RTPG extended header IMPLICIT TRANSITION TIME, in seconds. */
  readonly implicitTransitionSeconds: number;
  /** The local group's current state, the one the access checks use. */
  readonly localState: AluaAccessState;
  /** How many times the local group's state changed (a counter for metrics). */
  readonly transitions: number;
  /** Whether this gateway holds the medium's lock; undefined for a medium without one. */
  readonly ownsMedium: boolean | undefined;
  /** Whether SET TARGET PORT GROUPS may name this group. */
  hasGroup(id: number): boolean;
  /** Every group, sorted by id, in its current state, without asking the medium who owns it. */
  groupStates(): readonly TargetPortGroupStatus[];
  /** Every group, sorted by id, as every gateway reports it (REPORT TARGET PORT GROUPS). */
  report(): Promise<readonly TargetPortGroupStatus[]>;
  /** Explicit transitions (SET TARGET PORT GROUPS); rejects as the medium's lock does. */
  setStates(changes: readonly TargetPortGroupChange[]): Promise<void>;
}

/**
 * The unit a command runs on (ScsiDevice implements it): what the handlers of the command
 * family files read, change and call — nothing else. It is a CopyUnit too: the receiving unit
 * may be the source or destination of its own EXTENDED COPY.
 */
export interface LogicalUnit extends CopyUnit {
  readonly backstore: Backstore;
  readonly config: UnitSettings;
  readonly table: CommandCatalog;
  /** Response data is built here (RESPONSE_SCRATCH_BYTES), then sent with replyScratch(). */
  readonly scratch: Uint8Array;
  /** COMPARE AND WRITE takes its range exclusively; every other data command shares. */
  readonly rangeLock: RangeLock;
  /** Unit serial number (VPD 0x80). */
  readonly unitSerial: string;
  /** NAA IEEE Registered Extended designator (VPD 0x83), 16 bytes. */
  readonly naa: Uint8Array;
  /** Other units EXTENDED COPY may name. */
  readonly registry: CopyUnitLookup;
  /** Control mode page D_SENSE: descriptor-format sense when true (MODE SELECT changes it). */
  descriptorSense: boolean;
  /** Caching mode page WCE (MODE SELECT changes it). */
  writeCacheEnabled: boolean;
  /** START STOP UNIT sets and clears it. */
  stopped: boolean;
  /** Target port groups (alua.ts AluaState), when the device is configured with ALUA. */
  readonly alua?: UnitAlua;
  /** Takes the oldest pending unit attention, if any (REQUEST SENSE). */
  takeUnitAttention(): SenseReason | undefined;
  /** CHECK CONDITION with this reason, in the unit's sense format; no Data-In. */
  fail(command: ScsiCommand, reason: SenseReason, details?: SenseDetails): void;
  /** Turns a backstore failure into sense; anything else is a bug and is rethrown. */
  failFromBackstore(command: ScsiCommand, error: unknown): void;
  /** Replies with `lengthBytes` of `scratch`, cut to the allocation length. */
  replyScratch(command: ScsiCommand, lengthBytes: number, allocationLengthBytes: number): void;
  /**
   * The first `lengthBytes` of Data-Out copied into a scratch buffer, or undefined when Data-Out
   * is shorter. Valid only until the next command runs: parse it before any await.
   */
  parameterList(command: ScsiCommand, lengthBytes: number): Uint8Array | undefined;
}

export type CommandHandler = (unit: LogicalUnit, command: ScsiCommand) => IoResult;

/** One row of the opcode table (table.ts): a command, or one service action of an opcode. */
export interface OpcodeRow {
  readonly opcode: number;
  /** For opcodes that carry a service action in byte 1 (SERVICE ACTION IN(16), MAINTENANCE IN…). */
  readonly serviceAction?: number;
  readonly name: string;
  /**
   * CDB usage data (SPC-4 6.35): byte 0 is the opcode, each later byte has a 1 for every bit
   * the command looks at. Its length is the CDB length.
   */
  readonly usage: readonly number[];
  readonly execute: CommandHandler;
  /** SAM-5 5.14: INQUIRY, REPORT LUNS and REQUEST SENSE neither report nor clear a unit attention. */
  readonly ignoresUnitAttention?: boolean;
  /** SBC-3 4.20: a medium access command, refused with NOT READY while the unit is stopped. */
  readonly mediumAccess?: boolean;
  /** For commands that exist only when the backstore can do them (UNMAP); absent: always. */
  readonly supported?: (unit: LogicalUnit) => boolean;
}
