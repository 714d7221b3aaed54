// One served device: its UIO mapping, ring engine, SCSI unit, backstore and wait worker, wired
// together; attach() brings it up (taking the ring over from a dead predecessor first, see
// ring-recovery.ts), reopen()/resize()/setWriteCache() apply a RECONFIG_DEVICE, detach() drains
// it and releases everything in reverse order.
import type { Backstore } from "../../backstores/types.ts";
import { AccountingExecutor } from "../metrics/accounting-executor.ts";
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import { RingDriver } from "../ring/driver.ts";
import { RingEngine, type RingLogger } from "../ring/engine.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../scsi/device.ts";
import type { TcmuDeviceInfo } from "../uio/discover.ts";
import { UioDevice } from "../uio/uio-device.ts";
import { Waiter } from "../uio/waiter.ts";
import { recoverRing, type RecoveryResult, type RingActions } from "./ring-recovery.ts";

/** Opens the store a dev_config path names, at `sizeBytes` (dev_size). */
export type BackstoreOpener = (configPath: string, sizeBytes: number) => Backstore | Promise<Backstore>;

export interface AttachOptions {
  openBackstore: BackstoreOpener;
  logger: RingLogger;
  /** The device disappeared from under us (removed in configfs), or its waiter died. */
  onGone: (device: AttachedDevice, reason: string) => void;
  /** block_dev / reset_ring through configfs; absent where there is none (tests). */
  actions?: RingActions;
  /** MODE SELECT changed WCE: the control plane mirrors it into attrib/emulate_write_cache. */
  onWriteCacheChange?: (device: AttachedDevice, enabled: boolean) => void;
}

export interface DetachOptions {
  /**
   * Set action/block_dev first, so commands arriving while we drain and until a successor
   * attaches are answered BUSY (retried by the initiator) instead of timing out in the ring.
   */
  block?: boolean;
  /** The device was removed for good: delete what only it used (the RAM store's file). */
  destroy?: boolean;
}

export class AttachedDevice {
  readonly info: TcmuDeviceInfo;
  readonly uio: UioDevice;
  readonly engine: RingEngine;
  readonly metrics = new DeviceMetrics();
  readonly recovery: RecoveryResult;
  readonly #executor: AccountingExecutor;
  readonly #driver: RingDriver;
  readonly #options: AttachOptions;
  #configPath: string;
  #backstore: Backstore;
  #scsi: ScsiDevice;
  #waiter: Waiter | undefined;
  #detaching: Promise<void> | undefined;

  private constructor(info: TcmuDeviceInfo, backstore: Backstore, uio: UioDevice, recovery: RecoveryResult, options: AttachOptions) {
    this.info = info;
    this.uio = uio;
    this.recovery = recovery;
    this.#options = options;
    this.#configPath = info.configPath;
    this.#backstore = backstore;
    const sizeBytes = info.attributes.devSizeBytes > 0 ? info.attributes.devSizeBytes : backstore.sizeBytes;
    this.#scsi = this.#buildScsi(backstore, sizeBytes, info.attributes.emulateWriteCache);
    this.metrics.ringResets = recovery.resetBytes > 0 ? 1 : 0;
    this.#executor = new AccountingExecutor(this.#scsi, this.metrics);
    this.engine = new RingEngine(uio, uio.ringDoorbell, this.#executor, { logger: options.logger });
    this.#driver = new RingDriver(this.engine);
  }

  static async attach(info: TcmuDeviceInfo, options: AttachOptions): Promise<AttachedDevice> {
    const backstore = await options.openBackstore(info.configPath, info.attributes.devSizeBytes);
    let uio: UioDevice | undefined;
    try {
      uio = UioDevice.open(info.devicePath, info.mapSizeBytes);
      const recovery = options.actions === undefined ? { resetBytes: 0 } : await recoverRing(uio, options.actions);
      const device = new AttachedDevice(info, backstore, uio, recovery, options);
      device.#startWaiting();
      return device;
    } catch (error) {
      uio?.close();
      await backstore.close();
      throw error;
    }
  }

  get scsi(): ScsiDevice {
    return this.#scsi;
  }

  get backstore(): Backstore {
    return this.#backstore;
  }

  /** The dev_config path (after the subtype) the device is served from now. */
  get configPath(): string {
    return this.#configPath;
  }

  get detaching(): boolean {
    return this.#detaching !== undefined;
  }

  #buildScsi(backstore: Backstore, sizeBytes: number, writeCacheEnabled: boolean): ScsiDevice {
    const attributes = this.info.attributes;
    return new ScsiDevice(backstore, {
      name: this.info.deviceName,
      blockSizeBytes: attributes.hwBlockSizeBytes,
      sizeBytes,
      maxTransferBlocks: attributes.hwMaxSectors,
      writeCacheEnabled,
      identity: { ...DEFAULT_IDENTITY, unitSerial: attributes.unitSerial },
      onWriteCacheChange: (enabled) => this.#options.onWriteCacheChange?.(this, enabled),
    });
  }

  #startWaiting(): void {
    this.#waiter = new Waiter({
      fd: this.uio.fd,
      readBytes: 4,
      onWake: this.#driver.kick,
      onGone: (reason) => this.#options.onGone(this, reason),
    });
    // Whatever the kernel posted since the ring was taken over is served now.
    this.#driver.kick();
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
    await this.reopen(this.#configPath, sizeBytes);
  }

  /**
   * Serves the device from `configPath` at `sizeBytes` from now on. New commands are held back
   * while running ones finish; the old store is closed before the new one opens (stores lock
   * their files). If the new one cannot open, the old one is reopened and the error thrown, so
   * the caller can veto the reconfiguration.
   */
  async reopen(configPath: string, sizeBytes: number): Promise<void> {
    await this.#executor.quiesce();
    const previous = { configPath: this.#configPath, sizeBytes: this.#scsi.sizeBytes, backstore: this.#backstore };
    try {
      await previous.backstore.flush();
      await previous.backstore.close();
      let next: Backstore;
      try {
        next = await this.#options.openBackstore(configPath, sizeBytes);
      } catch (error) {
        this.#swap(await this.#reopenPrevious(previous.configPath, previous.sizeBytes), previous.configPath, previous.sizeBytes);
        throw error;
      }
      this.#swap(next, configPath, sizeBytes);
    } finally {
      this.#executor.resume(this.#scsi);
    }
  }

  async #reopenPrevious(configPath: string, sizeBytes: number): Promise<Backstore> {
    try {
      return await this.#options.openBackstore(configPath, sizeBytes);
    } catch (error) {
      const reason = `its backstore could not be reopened after a failed reconfiguration: ${error instanceof Error ? error.message : String(error)}`;
      queueMicrotask(() => this.#options.onGone(this, reason));
      throw error;
    }
  }

  /** A new SCSI unit over `backstore` that keeps the old one's state (WCE, D_SENSE, pending UAs). */
  #swap(backstore: Backstore, configPath: string, sizeBytes: number): void {
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
    this.#configPath = configPath;
    next.resize(sizeBytes);
  }

  /** emulate_write_cache changed: turning the cache off makes what it holds durable first. */
  async setWriteCache(enabled: boolean): Promise<void> {
    if (!enabled && this.#scsi.writeCacheEnabled) await this.#backstore.flush();
    this.#scsi.writeCacheEnabled = enabled;
  }

  /** Stops waiting for new work, finishes what the kernel posted, then releases everything. */
  detach(options: DetachOptions = {}): Promise<void> {
    this.#detaching ??= this.#detach(options);
    return this.#detaching;
  }

  async #detach(options: DetachOptions): Promise<void> {
    await this.#waiter?.stop();
    if (options.block === true && this.#options.actions !== undefined) {
      try {
        await this.#options.actions.block();
      } catch (error) {
        this.#options.logger.warn(`block_dev before detaching failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    // Everything already posted is finished: with the device blocked nothing new arrives.
    while (!this.engine.broken && this.engine.hasPendingEntries) {
      this.engine.processRing();
      await this.engine.whenIdle();
    }
    await this.engine.whenIdle();
    try {
      await this.#backstore.flush();
    } finally {
      if (options.destroy === true && this.#backstore.destroy !== undefined) await this.#backstore.destroy();
      else await this.#backstore.close();
      this.#scsi.close();
      this.uio.close();
    }
  }

  /** One line of counters, logged when the device is released. */
  summary(): string {
    const counters = this.engine.counters;
    return (
      `${this.info.deviceName}: ${counters.commands} commands, ${counters.padEntries} PAD, ${counters.tmrEntries} TMR, ` +
      `${counters.abortedCommands} aborted, ${counters.malformedEntries} malformed, ${counters.doorbells} doorbells`
    );
  }
}
