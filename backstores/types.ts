// The one interface every backstore implements. Offsets and lengths are bytes and always
// block-aligned (the SCSI layer checks ranges before calling). Data moves between the store and
// a DataSegments list over the mapped data area, so a store can preadv/pwritev straight into it.
// An operation finishes synchronously (returns undefined) or returns a promise; failures are
// thrown (or rejected) as BackstoreError so the SCSI layer can pick the sense.
import type { DataSegments } from "../src/ring/data-segments.ts";

export type IoResult = void | Promise<void>;

export interface BackstoreCapabilities {
  /** Writes, UNMAP and WRITE SAME answer DATA PROTECT / WRITE PROTECTED. */
  readonly readOnly: boolean;
  /** UNMAP / WRITE SAME with UNMAP can really deallocate (VPD B2 LBPU, LBPWS). */
  readonly unmap: boolean;
  /** Deallocated blocks read back as zeros (LBPRZ). */
  readonly unmapReadsZeroes: boolean;
  /** lbaStatus() knows mapped from deallocated (GET LBA STATUS); otherwise all is mapped. */
  readonly lbaStatus: boolean;
  /** Whether writes can sit in a volatile cache that flush() makes durable. */
  readonly volatileCache: boolean;
  /**
   * The smallest range unmap() really deallocates (a file system block, a tmpfs page):
   * VPD B2 OPTIMAL UNMAP GRANULARITY. Smaller or unaligned pieces are zeroed in place instead.
   * Absent: no preference.
   */
  readonly unmapGranularityBytes?: number;
  /**
   * The transfer size the store works in best (an RBD object): VPD B0 OPTIMAL TRANSFER LENGTH
   * GRANULARITY. Absent: one physical block.
   */
  readonly optimalGranularityBytes?: number;
  /**
   * compareAndWrite() compares and writes atomically on the medium itself (an RBD image that
   * other gateways serve too), for ranges inside one aligned piece of this many bytes. Absent:
   * COMPARE AND WRITE is atomic within this appliance only (its LBA lock).
   */
  readonly atomicCompareAndWriteBytes?: number;
}

export interface LbaStatusExtent {
  /** The extent starting at the asked offset is allocated (true) or deallocated (false). */
  mapped: boolean;
  lengthBytes: number;
}

export interface Backstore {
  /** "ram", "file", "qcow2": for logs and `list`. */
  readonly kind: string;
  /** What the store holds, shown in logs (a path, a label). */
  readonly description: string;
  readonly sizeBytes: number;
  readonly capabilities: BackstoreCapabilities;

  read(offsetBytes: number, lengthBytes: number, target: DataSegments, targetStartBytes: number): IoResult;
  /** `durable`: the data must be on stable storage before this finishes (FUA, WCE=0). */
  write(offsetBytes: number, lengthBytes: number, source: DataSegments, sourceStartBytes: number, durable: boolean): IoResult;
  flush(): IoResult;
  /**
   * Deallocates the range where the store can. Reads of it return zeros afterwards when
   * capabilities.unmapReadsZeroes; otherwise (a discarding block device) they may return anything.
   */
  unmap(offsetBytes: number, lengthBytes: number): IoResult;
  /** Writes zeros over the range; `deallocate` permits doing it by deallocating. */
  writeZeroes(offsetBytes: number, lengthBytes: number, deallocate: boolean, durable: boolean): IoResult;
  lbaStatus(offsetBytes: number): LbaStatusExtent | Promise<LbaStatusExtent>;
  /**
   * With capabilities.atomicCompareAndWriteBytes: writes `write` at `offsetBytes` only if the
   * medium there equals `compare`, in one operation of the medium. Returns -1 when written, else
   * the offset of the first byte of `compare` that differs.
   */
  compareAndWrite?(offsetBytes: number, compare: Uint8Array, write: Uint8Array, durable: boolean): number | Promise<number>;
  /** Releases descriptors and mappings; the data stays (a restarted handler reattaches). */
  close(): void | Promise<void>;
  /**
   * The device was removed for good: close, then delete what only this device used (the RAM
   * store's shared-memory file). Stores over a user's image leave it alone. Absent: same as close.
   */
  destroy?(): void | Promise<void>;
  /**
   * Set by the unit's owner: called when the medium grew by itself (an rbd image resized on the
   * cluster), so the unit can raise CAPACITY DATA HAS CHANGED. Stores whose size only changes
   * through reconfiguration never call it.
   */
  onGrow?: (sizeBytes: number) => void;
  /**
   * Set by the unit's owner: the medium went out of reach (false: a cluster stopped answering,
   * the client was blocklisted) or serves again (true). Called once per change, for the log and
   * the outage counter; commands meanwhile fail with "unavailable" (NOT READY).
   */
  onHealth?: (available: boolean, reason: string) => void;
  /** Things worth an administrator's attention found at open (served as asked, but differently). */
  readonly warnings?: readonly string[];
  /**
   * A medium other gateways serve too (rbd), whose exclusive lock decides which gateway's ALUA
   * target port group is active/optimized (docs/ha.md). Absent: the store is this gateway's
   * alone, or shared without a lock the gateways agree on (ALUA states are then explicit only).
   */
  readonly ownership?: MediumOwnership;
}

/** A medium other gateways serve too, whose exclusive lock says who is active/optimized (rbd). */
export interface MediumOwnership {
  /** This gateway holds the lock now. */
  readonly owned: boolean;
  /**
   * Takes the lock. breakLiveOwner=false (implicit, first I/O): only a free lock or a dead
   * owner's; otherwise rejects BackstoreError("unavailable"). true (explicit STPG): breaks
   * (fences) a live owner too. Publishes ownerTag.
   */
  acquire(options: { breakLiveOwner: boolean; ownerTag: number }): Promise<void>;
  /** Gives the lock up (explicit transition away from active/optimized). */
  release(): Promise<void>;
  /** The tag (ALUA group id) the current owner published, undefined when nobody owns the lock or it is unknown. */
  ownerTag(): Promise<number | undefined>;
  /** Set by the unit: the lock was lost (another gateway broke it) — called once per loss. */
  onLost?: (reason: string) => void;
}

/**
 * "unreachable": the unit is served by another data-plane worker that no longer serves it (an
 * EXTENDED COPY peer detached or its thread died mid-copy). "unavailable": the store's medium is
 * out of reach for now (a cluster timed out): nothing was done, the initiator should retry.
 */
export type BackstoreErrorKind = "read" | "write" | "no-space" | "write-protected" | "unsupported" | "unreachable" | "unavailable";

/** An I/O failure the initiator should hear about; `offsetBytes` is where it failed. */
export class BackstoreError extends Error {
  readonly kind: BackstoreErrorKind;
  readonly offsetBytes: number;

  constructor(kind: BackstoreErrorKind, offsetBytes: number, message: string) {
    super(message);
    this.name = "BackstoreError";
    this.kind = kind;
    this.offsetBytes = offsetBytes;
  }
}

/**
 * A store that cannot be opened as configured (missing image, lock held, too small…).
 * `transient`: its medium is out of reach right now (a Ceph cluster not answering); the same
 * open may work later, so serve tries again instead of giving the device up.
 */
export class BackstoreOpenError extends Error {
  readonly code = "E_BACKSTORE_OPEN";
  readonly transient: boolean;

  constructor(message: string, options: { transient?: boolean } = {}) {
    super(message);
    this.name = "BackstoreOpenError";
    this.transient = options.transient ?? false;
  }
}
