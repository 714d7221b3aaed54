// One device as its data-plane worker holds it: the ring engine over the mapping the control
// plane made, the SCSI unit, the backstore, and the accounting between them. Commands run here,
// on the worker's thread, inside its batches; the control operations (resize, reopen, write
// cache, drain-and-close) are the same code serve ran on the main thread before, now reached
// through the worker's mailbox.
import { toArrayBuffer } from "bun:ffi";
import { BackstoreError, type Backstore } from "../../backstores/types.ts";
import * as libc from "../libc/libc.ts";
import { SystemCallError } from "../libc/errno.ts";
import { AccountingExecutor } from "../metrics/accounting-executor.ts";
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import { dataAreaBytesOf, RingEngine, type RingLogger } from "../ring/engine.ts";
import { ALUA_STATE_CODES, type AluaAccessState, type AluaConfig } from "../scsi/alua.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../scsi/device.ts";
import { IoBuffer } from "../scsi/io-buffer.ts";
import { settle } from "../scsi/locked-io.ts";
import { maxTransferBlocksFor } from "../scsi/limits.ts";
import { RingStatsWriter } from "./device-stats.ts";
import type { AttachRequest, DeviceSpec, PeerIoRequest, StoreSource, StoreSummary } from "./protocol.ts";

export type StoreOpener = (store: StoreSource, sizeBytes: number) => Promise<Backstore>;

export interface UnitHooks {
  logger: RingLogger & { info(message: string): void };
  /** Completions freed room while entries wait: the worker runs this unit's ring again. */
  onPendingWork: () => void;
  onWriteCacheChange: (enabled: boolean) => void;
  /** The unit's own ALUA group changed state (AluaState.onChange). */
  onAluaChange: (state: AluaAccessState) => void;
}

export class ServedUnit {
  readonly token: number;
  readonly spec: DeviceSpec;
  readonly waitFd: number;
  readonly waitReadBytes: number;
  readonly edgeTriggered: boolean;
  readonly engine: RingEngine;
  readonly metrics: DeviceMetrics;
  readonly #statsWriter: RingStatsWriter;
  readonly #executor: AccountingExecutor;
  readonly #open: StoreOpener;
  readonly #hooks: UnitHooks;
  readonly #doorbellFd: number;
  readonly #doorbellWord = new Uint32Array(1);
  #store: StoreSource;
  #backstore: Backstore;
  #scsi: ScsiDevice;
  readonly #maxTransferBlocks: number;
  /** EXTENDED COPY chunks other workers asked for, running now: reopen and close wait for them. */
  readonly #peerIo = new Set<Promise<void>>();
  /** Set while reopen() swaps the store: peer chunks wait for it. */
  #reopening: Promise<void> | undefined;
  /** Set by the inject-fault test hook: the next batch throws. */
  faultInjected = false;
  detaching = false;

  private constructor(request: AttachRequest, backstore: Backstore, open: StoreOpener, hooks: UnitHooks) {
    this.token = request.token;
    this.spec = request.spec;
    this.waitFd = request.waitFd;
    this.waitReadBytes = request.waitReadBytes;
    this.edgeTriggered = request.edgeTriggered;
    this.#doorbellFd = request.doorbellFd;
    this.#open = open;
    this.#hooks = hooks;
    this.#store = request.spec.store;
    this.#backstore = backstore;
    this.metrics = new DeviceMetrics(request.stats, 0);
    this.#statsWriter = new RingStatsWriter(request.stats);
    const sizeBytes = request.spec.sizeBytes > 0 ? request.spec.sizeBytes : backstore.sizeBytes;
    const memory = new Uint8Array(toArrayBuffer(request.address, 0, request.mapBytes));
    this.#maxTransferBlocks = maxTransferBlocksFor(dataAreaBytesOf(memory), request.spec.blockSizeBytes);
    this.#scsi = this.#buildScsi(backstore, sizeBytes, request.spec.writeCacheEnabled);
    this.#executor = new AccountingExecutor(this.#scsi, this.metrics);
    this.#followStore(backstore);
    this.engine = new RingEngine({ memory, baseAddress: request.address }, this.#ringDoorbell, this.#executor, { logger: hooks.logger });
    this.engine.onPendingWork = hooks.onPendingWork;
    this.publishStats();
  }

  static async open(request: AttachRequest, open: StoreOpener, hooks: UnitHooks): Promise<ServedUnit> {
    const backstore = await open(request.spec.store, request.spec.sizeBytes);
    try {
      return new ServedUnit(request, backstore, open, hooks);
    } catch (error) {
      await backstore.close();
      throw error;
    }
  }

  get summary(): StoreSummary {
    return {
      naaKey: this.#scsi.naaKey,
      kind: this.#backstore.kind,
      description: this.#backstore.description,
      storeSizeBytes: this.#backstore.sizeBytes,
      sizeBytes: this.#scsi.sizeBytes,
      warnings: [...(this.#backstore.warnings ?? [])],
    };
  }

  readonly #ringDoorbell = (): void => {
    const written = libc.writeRaw(this.#doorbellFd, this.#doorbellWord, 4);
    if (written < 0) throw new SystemCallError("write", `doorbell of ${this.spec.name}`, -written);
  };

  /** One bounded batch; true when entries are still waiting to be read. */
  processBatch(): boolean {
    if (this.faultInjected) {
      this.faultInjected = false;
      throw new Error("fault injected into the data path (test hook)");
    }
    this.engine.processRing();
    return this.engine.hasPendingEntries;
  }

  publishStats(): void {
    this.#statsWriter.publish(this.engine);
    this.#statsWriter.publishUnit(this.#scsi);
    const alua = this.#scsi.alua;
    if (alua !== undefined) this.#statsWriter.publishAlua(alua.localGroupId, ALUA_STATE_CODES[alua.localState], alua.ownsMedium, alua.transitions);
    else this.#statsWriter.publishAlua(0, 0, undefined, 0);
  }

  /**
   * One chunk of an EXTENDED COPY running on another worker: read into or written from the
   * request's shared buffer, under this unit's range lock, as a chunk of a local copy would be.
   */
  peerIo(request: PeerIoRequest): Promise<void> {
    const running = this.#runPeerIo(request);
    this.#peerIo.add(running);
    void running.then(
      () => this.#peerIo.delete(running),
      () => this.#peerIo.delete(running),
    );
    return running;
  }

  async #runPeerIo(request: PeerIoRequest): Promise<void> {
    while (this.#reopening !== undefined) await this.#reopening;
    const scsi = this.#scsi;
    const { lba, blocks } = request;
    const refuse = (why: string) => new BackstoreError("unreachable", lba * scsi.blockSizeBytes, `${this.spec.name}: ${why}`);
    if (this.detaching || scsi.closed) throw refuse("the device is leaving its worker");
    if (scsi.stopped) throw refuse("the device is stopped");
    if (request.write && scsi.writeProtected) throw new BackstoreError("write-protected", lba * scsi.blockSizeBytes, `${this.spec.name} is read-only`);
    if (!Number.isSafeInteger(lba) || blocks <= 0 || lba + blocks > scsi.capacityBlocks) throw refuse(`blocks ${lba}+${blocks} are past its end`);
    const bytes = blocks * scsi.blockSizeBytes;
    if (request.data.byteLength !== bytes) throw new Error(`peer chunk of ${request.data.byteLength} bytes for ${blocks} blocks of ${scsi.blockSizeBytes}`);
    const shared = new Uint8Array(request.data);
    const buffer = new IoBuffer(bytes);
    await scsi.withRange(lba, blocks, false, async () => {
      if (request.write) {
        buffer.bytes.set(shared);
        await settle(scsi.writeBlocks(lba, blocks, buffer.segments, 0, request.durable));
      } else {
        await settle(scsi.readBlocks(lba, blocks, buffer.segments, 0));
        shared.set(buffer.bytes.subarray(0, bytes));
      }
    });
  }

  async #peerIoSettled(): Promise<void> {
    while (this.#peerIo.size > 0) await Promise.allSettled([...this.#peerIo]);
  }

  #buildScsi(backstore: Backstore, sizeBytes: number, writeCacheEnabled: boolean): ScsiDevice {
    const spec = this.spec;
    const scsi = new ScsiDevice(backstore, {
      name: spec.name,
      blockSizeBytes: spec.blockSizeBytes,
      sizeBytes,
      maxTransferBlocks: this.#maxTransferBlocks,
      optimalTransferBlocks: spec.hwMaxSectors,
      writeCacheEnabled,
      identity: { ...DEFAULT_IDENTITY, unitSerial: spec.unitSerial },
      alua: spec.alua,
      onWriteCacheChange: (enabled) => this.#hooks.onWriteCacheChange(enabled),
    });
    if (scsi.alua !== undefined) scsi.alua.onChange = (state) => this.#hooks.onAluaChange(state);
    return scsi;
  }

  /** dev_size changed: a smaller or equal size needs no I/O; a larger one reopens the store. */
  async resize(sizeBytes: number): Promise<void> {
    const blockSizeBytes = this.#scsi.blockSizeBytes;
    if (sizeBytes <= 0 || sizeBytes % blockSizeBytes !== 0) {
      throw new Error(`dev_size ${sizeBytes} is not a positive multiple of the ${blockSizeBytes}-byte block size`);
    }
    if (sizeBytes <= this.#backstore.sizeBytes) {
      this.#scsi.resize(sizeBytes);
      return;
    }
    await this.reopen(this.#store, sizeBytes);
  }

  /**
   * Serves the device from `store` at `sizeBytes` from now on. New commands are held back
   * while running ones finish; the old store is closed before the new one opens (stores lock
   * their files). If the new one cannot open, the old one is reopened and the error thrown, so
   * the caller can veto the reconfiguration.
   */
  reopen(store: StoreSource, sizeBytes: number): Promise<void> {
    return this.#whileQuiesced(() => this.#swapStore(store, sizeBytes));
  }

  /**
   * Runs `work` with new commands held back and running ones and peer chunks finished, one such
   * change at a time (peer chunks wait on #reopening too); the unit it leaves resumes after.
   */
  async #whileQuiesced(work: () => void | Promise<void>): Promise<void> {
    let done!: () => void;
    while (this.#reopening !== undefined) await this.#reopening;
    this.#reopening = new Promise((resolve) => (done = resolve));
    try {
      await this.#executor.quiesce();
      await this.#peerIoSettled();
      try {
        await work();
      } finally {
        this.#executor.resume(this.#scsi);
      }
    } finally {
      this.#reopening = undefined;
      done();
    }
  }

  async #swapStore(store: StoreSource, sizeBytes: number): Promise<void> {
    const previous = { store: this.#store, sizeBytes: this.#scsi.sizeBytes, backstore: this.#backstore };
    await previous.backstore.flush();
    await previous.backstore.close();
    let next: Backstore;
    try {
      next = await this.#open(store, sizeBytes);
    } catch (error) {
      this.#swap(await this.#open(previous.store, previous.sizeBytes), previous.store, previous.sizeBytes);
      throw error;
    }
    this.#swap(next, store, sizeBytes);
  }

  /** A new SCSI unit over `backstore` that keeps the old one's state (WCE, D_SENSE, pending UAs). */
  #swap(backstore: Backstore, store: StoreSource, sizeBytes: number): void {
    const previous = this.#scsi;
    const next = this.#buildScsi(backstore, previous.sizeBytes, previous.writeCacheEnabled);
    next.descriptorSense = previous.descriptorSense;
    next.stopped = previous.stopped;
    for (let attention = previous.takeUnitAttention(); attention !== undefined; attention = previous.takeUnitAttention()) {
      next.raiseUnitAttention(attention);
    }
    previous.close();
    this.#scsi = next;
    this.#backstore = backstore;
    this.#followStore(backstore);
    this.#store = store;
    next.resize(sizeBytes);
  }

  /**
   * A store that grew by itself (an rbd image resized on the cluster) is served at its new size;
   * one whose medium went out of reach or came back is logged once per change and counted.
   */
  #followStore(backstore: Backstore): void {
    backstore.onHealth = (available, reason) => {
      if (this.#backstore !== backstore) return;
      if (available) {
        this.#hooks.logger.info(`${backstore.description} serves again: ${reason}`);
        return;
      }
      this.metrics.storeOutages += 1;
      this.#hooks.logger.warn(`${backstore.description} is out of reach: ${reason}`);
    };
    backstore.onGrow = (sizeBytes) => {
      if (this.#backstore !== backstore || sizeBytes <= this.#scsi.sizeBytes) return;
      this.#hooks.logger.warn(`${this.spec.name}: ${backstore.description} grew to ${sizeBytes} bytes; serving it at that size (CAPACITY DATA HAS CHANGED)`);
      this.#scsi.resize(sizeBytes - (sizeBytes % this.#scsi.blockSizeBytes));
    };
  }

  /** emulate_write_cache changed: turning the cache off makes what it holds durable first. */
  async setWriteCache(enabled: boolean): Promise<void> {
    if (!enabled && this.#scsi.writeCacheEnabled) await this.#backstore.flush();
    this.#scsi.writeCacheEnabled = enabled;
  }

  /**
   * Serves the device with these ALUA groups from now on (`create` makes them after enable, so
   * after we attached; an administrator may edit them). Running commands finish first; the new
   * unit keeps the old one's state, as after a reopen, over the same store.
   */
  setAlua(config: AluaConfig | undefined): Promise<void> {
    return this.#whileQuiesced(() => {
      this.spec.alua = config;
      this.#swap(this.#backstore, this.#store, this.#scsi.sizeBytes);
    });
  }

  /** Finishes everything posted (the worker no longer waits on the device), flushes, closes. */
  async drainAndClose(destroy: boolean): Promise<void> {
    const engine = this.engine;
    while (!engine.broken && engine.hasPendingEntries) {
      engine.processRing();
      await engine.whenIdle();
    }
    await engine.whenIdle();
    await this.#peerIoSettled();
    this.publishStats();
    try {
      await this.#backstore.flush();
    } finally {
      await this.close(destroy);
    }
  }

  /** Releases the store without draining: after a fault, or when the drain itself failed. */
  async close(destroy: boolean): Promise<void> {
    this.#scsi.close();
    this.#statsWriter.publishUnit(this.#scsi);
    if (destroy && this.#backstore.destroy !== undefined) await this.#backstore.destroy();
    else await this.#backstore.close();
  }
}
