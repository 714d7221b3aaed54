// One served device: its UIO mapping, ring engine, SCSI unit, backstore and wait worker, wired
// together; attach() brings it up, detach() drains it and releases everything in reverse order.
import type { Backstore } from "../../backstores/types.ts";
import { RingDriver } from "../ring/driver.ts";
import { RingEngine, type RingLogger } from "../ring/engine.ts";
import { DEFAULT_IDENTITY, ScsiDevice } from "../scsi/device.ts";
import type { TcmuDeviceInfo } from "../uio/discover.ts";
import { UioDevice } from "../uio/uio-device.ts";
import { Waiter } from "../uio/waiter.ts";

export type BackstoreOpener = (info: TcmuDeviceInfo) => Backstore | Promise<Backstore>;

export interface AttachOptions {
  openBackstore: BackstoreOpener;
  logger: RingLogger;
  /** The device disappeared from under us (removed in configfs), or its waiter died. */
  onGone: (device: AttachedDevice, reason: string) => void;
}

export class AttachedDevice {
  readonly info: TcmuDeviceInfo;
  readonly backstore: Backstore;
  readonly uio: UioDevice;
  readonly engine: RingEngine;
  readonly scsi: ScsiDevice;
  readonly #driver: RingDriver;
  #waiter: Waiter | undefined;
  #detaching: Promise<void> | undefined;

  private constructor(info: TcmuDeviceInfo, backstore: Backstore, uio: UioDevice, options: AttachOptions) {
    this.info = info;
    this.backstore = backstore;
    this.uio = uio;
    const attributes = info.attributes;
    this.scsi = new ScsiDevice(backstore, {
      name: info.deviceName,
      blockSizeBytes: attributes.hwBlockSizeBytes,
      sizeBytes: attributes.devSizeBytes > 0 ? attributes.devSizeBytes : backstore.sizeBytes,
      maxTransferBlocks: attributes.hwMaxSectors,
      writeCacheEnabled: attributes.emulateWriteCache,
      identity: { ...DEFAULT_IDENTITY, unitSerial: attributes.unitSerial },
    });
    this.engine = new RingEngine(uio, uio.ringDoorbell, this.scsi, { logger: options.logger });
    this.#driver = new RingDriver(this.engine);
  }

  static async attach(info: TcmuDeviceInfo, options: AttachOptions): Promise<AttachedDevice> {
    const backstore = await options.openBackstore(info);
    let uio: UioDevice | undefined;
    try {
      uio = UioDevice.open(info.devicePath, info.mapSizeBytes);
      const device = new AttachedDevice(info, backstore, uio, options);
      device.#startWaiting(options);
      return device;
    } catch (error) {
      uio?.close();
      await backstore.close();
      throw error;
    }
  }

  #startWaiting(options: AttachOptions): void {
    this.#waiter = new Waiter({
      fd: this.uio.fd,
      readBytes: 4,
      onWake: this.#driver.kick,
      onGone: (reason) => options.onGone(this, reason),
    });
    // Commands a dead predecessor left between cmd_tail and cmd_head are served now.
    this.#driver.kick();
  }

  /** Stops waiting for new work, finishes commands in flight, then releases everything. */
  detach(): Promise<void> {
    this.#detaching ??= this.#detach();
    return this.#detaching;
  }

  async #detach(): Promise<void> {
    await this.#waiter?.stop();
    await this.engine.whenIdle();
    try {
      await this.backstore.flush();
    } finally {
      await this.backstore.close();
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
