// EXTENDED COPY between devices on different workers, the worker's side. A copy manager finds
// units by NAA in its own thread's registry (device-registry.ts); devices served by the other
// workers appear there as PeerUnits. A PeerUnit's state (block size, capacity, stopped, write
// protect, WCE) is read from the owner's shared stats buffer, which the owner publishes after
// each batch; its chunks move through a SharedArrayBuffer, read or written by the owning worker
// under its own LBA range lock when the control plane hands it the request (peer-router.ts).
//
// The copy manager holds a unit's lock while it reads or writes a chunk of it; for a peer the
// owner holds it for exactly that chunk, so a chunk is still atomic against the owner's own
// COMPARE AND WRITE, and no lock is ever held across threads.
import { BackstoreError } from "../../backstores/types.ts";
import type { DataSegments } from "../ring/data-segments.ts";
import type { CopyUnit } from "../scsi/logical-unit.ts";
import { UnitStateReader } from "./device-stats.ts";
import type { PeerAnnouncement, PeerIoFailure, WorkerMessage } from "./protocol.ts";

/**
 * Chunks one worker may have outstanding at peers. Each EXTENDED COPY has at most one, and
 * commands in flight are bounded by the rings, so this is never reached in service; beyond it a
 * copy fails (COPY TARGET DEVICE NOT REACHABLE) rather than queueing without bound.
 */
export const PEER_IO_IN_FLIGHT_MAX = 4096;

export class PeerUnit implements CopyUnit {
  readonly naaKey: string;
  readonly workerIndex: number;
  readonly token: number;
  readonly #state: UnitStateReader;
  readonly #directory: PeerDirectory;
  /** The control plane said the device left its worker. */
  withdrawn = false;

  constructor(peer: PeerAnnouncement, directory: PeerDirectory) {
    this.naaKey = peer.naaKey;
    this.workerIndex = peer.workerIndex;
    this.token = peer.token;
    this.#state = new UnitStateReader(peer.stats);
    this.#directory = directory;
  }

  get blockSizeBytes(): number {
    return this.#state.blockSizeBytes;
  }

  get capacityBlocks(): number {
    return this.#state.capacityBlocks;
  }

  get closed(): boolean {
    return this.withdrawn || this.#state.closed;
  }

  get stopped(): boolean {
    return this.#state.stopped;
  }

  get writeProtected(): boolean {
    return this.#state.writeProtected;
  }

  get writeCacheEnabled(): boolean {
    return this.#state.writeCacheEnabled;
  }

  /** The owner takes the range for each chunk it moves (see the file comment). */
  withRange<T>(_lba: number, _blocks: number, _exclusive: boolean, work: () => Promise<T>): Promise<T> {
    return work();
  }

  async readBlocks(lba: number, blocks: number, target: DataSegments, targetStartBytes: number): Promise<void> {
    const data = new SharedArrayBuffer(blocks * this.blockSizeBytes);
    await this.#directory.request(this, false, lba, blocks, false, data);
    target.copyFrom(new Uint8Array(data), targetStartBytes);
  }

  async writeBlocks(lba: number, blocks: number, source: DataSegments, sourceStartBytes: number, durable: boolean): Promise<void> {
    const data = new SharedArrayBuffer(blocks * this.blockSizeBytes);
    source.copyTo(new Uint8Array(data), sourceStartBytes);
    await this.#directory.request(this, true, lba, blocks, durable, data);
  }
}

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The units of the other workers, by NAA, and the chunks this worker is waiting for. */
export class PeerDirectory {
  readonly #post: (message: WorkerMessage) => void;
  readonly #byNaa = new Map<string, PeerUnit[]>();
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;

  constructor(post: (message: WorkerMessage) => void) {
    this.#post = post;
  }

  add(peer: PeerAnnouncement): void {
    this.remove(peer.workerIndex, peer.token);
    const units = this.#byNaa.get(peer.naaKey) ?? [];
    units.push(new PeerUnit(peer, this));
    this.#byNaa.set(peer.naaKey, units);
  }

  remove(workerIndex: number, token: number): void {
    for (const [naaKey, units] of this.#byNaa) {
      const kept = units.filter((unit) => {
        const leaving = unit.workerIndex === workerIndex && unit.token === token;
        if (leaving) unit.withdrawn = true;
        return !leaving;
      });
      if (kept.length === 0) this.#byNaa.delete(naaKey);
      else if (kept.length !== units.length) this.#byNaa.set(naaKey, kept);
    }
  }

  /** The peers with this designator (the registry decides whether the name is unique). */
  list(naaKey: string): readonly CopyUnit[] {
    return this.#byNaa.get(naaKey) ?? [];
  }

  request(unit: PeerUnit, write: boolean, lba: number, blocks: number, durable: boolean, data: SharedArrayBuffer): Promise<void> {
    if (unit.withdrawn) return Promise.reject(unreachable(unit, "it left its worker"));
    if (this.#pending.size >= PEER_IO_IN_FLIGHT_MAX) return Promise.reject(unreachable(unit, `${PEER_IO_IN_FLIGHT_MAX} peer chunks already in flight`));
    const requestId = this.#nextRequestId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject });
      this.#post({ type: "peer-io", requestId, workerIndex: unit.workerIndex, token: unit.token, write, lba, blocks, durable, data });
    });
  }

  /** The control plane's answer to request `requestId`. */
  done(requestId: number, failure: PeerIoFailure | undefined): void {
    const pending = this.#pending.get(requestId);
    if (pending === undefined) return;
    this.#pending.delete(requestId);
    if (failure === undefined) pending.resolve();
    else pending.reject(new BackstoreError(failure.kind, failure.offsetBytes, failure.message));
  }
}

function unreachable(unit: PeerUnit, why: string): BackstoreError {
  return new BackstoreError("unreachable", 0, `EXTENDED COPY peer ${unit.naaKey} on worker ${unit.workerIndex}: ${why}`);
}
