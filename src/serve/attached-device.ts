// One served device as the control plane holds it: the UIO mapping (made here, unmapped here
// only after its worker let go of it), the ring taken over from a dead predecessor, the shared
// counters its worker publishes, and the mailbox calls that reach the worker which owns its
// ring engine, SCSI unit and backstore (src/data-plane/). attach() brings it up;
// resize()/reopen()/setWriteCache() apply a RECONFIG_DEVICE; detach() drains and releases it.
import { parseDevConfig } from "../config/dev-config.ts";
import type { DataPlanePool, DataPlaneWorker } from "../data-plane/pool.ts";
import { AluaGaugesReader, newStatsBuffer, RingStatsReader, UnitStateReader } from "../data-plane/device-stats.ts";
import type { StoreSource, StoreSummary } from "../data-plane/protocol.ts";
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import type { RingLogger } from "../ring/engine.ts";
import type { AluaAccessState, AluaConfig } from "../scsi/alua.ts";
import type { TcmuDeviceInfo } from "../uio/discover.ts";
import { UioDevice } from "../uio/uio-device.ts";
import { recoverRing, type RecoveryResult, type RingActions } from "./ring-recovery.ts";

/** A UIO read takes exactly the 4-byte interrupt count. */
const UIO_READ_BYTES = 4;

export type FaultKind = "data-path" | "worker";

export interface AttachOptions {
  pool: DataPlanePool;
  /** `user_<hba>/<name>`: what the RAM store names its memory after. */
  deviceKey: string;
  allowedRoots: string[];
  logger: RingLogger;
  /** The device disappeared from under us (removed in configfs). */
  onGone: (device: AttachedDevice, reason: string) => void;
  /** Its worker released it after a fault (or died): the caller attaches it again. */
  onReleased: (device: AttachedDevice, reason: string) => void;
  /** block_dev / reset_ring through configfs; absent where there is none (tests). */
  actions?: RingActions;
  /** MODE SELECT changed WCE: the control plane mirrors it into attrib/emulate_write_cache. */
  onWriteCacheChange?: (device: AttachedDevice, enabled: boolean) => void;
  /** Its ALUA group changed state on the worker: the control plane mirrors it into configfs. */
  onAluaChange?: (device: AttachedDevice, state: AluaAccessState) => void;
  /**
   * The backstore config the store is opened from when it is not the dev_config path itself (a
   * tcmu-runner config string under --compat, translated); default info.configPath.
   */
  backstoreConfig?: string;
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
  readonly recovery: RecoveryResult;
  readonly metrics: DeviceMetrics;
  readonly engine: RingStatsReader;
  /** The SCSI unit's state as its worker publishes it (stopped, write cache). */
  readonly unit: UnitStateReader;
  /** Its ALUA group's state, lock ownership and transitions as its worker publishes them. */
  readonly alua: AluaGaugesReader;
  readonly worker: DataPlaneWorker;
  readonly #token: number;
  #aluaConfig: AluaConfig | undefined;
  readonly #options: AttachOptions;
  #store: StoreSummary;
  #configPath: string;
  #released = false;
  #detaching: Promise<void> | undefined;

  private constructor(info: TcmuDeviceInfo, uio: UioDevice, recovery: RecoveryResult, worker: DataPlaneWorker, token: number, stats: SharedArrayBuffer, store: StoreSummary, options: AttachOptions) {
    this.info = info;
    this.uio = uio;
    this.recovery = recovery;
    this.worker = worker;
    this.#token = token;
    this.#aluaConfig = info.alua;
    this.#options = options;
    this.#store = store;
    this.#configPath = info.configPath;
    this.metrics = new DeviceMetrics(stats, 0);
    this.engine = new RingStatsReader(stats);
    this.unit = new UnitStateReader(stats);
    this.alua = new AluaGaugesReader(stats);
    this.metrics.ringResets = recovery.resetBytes > 0 ? 1 : 0;
  }

  static async attach(info: TcmuDeviceInfo, options: AttachOptions): Promise<AttachedDevice> {
    const store = storeSource(options.backstoreConfig ?? info.configPath);
    const uio = UioDevice.open(info.devicePath, info.mapSizeBytes);
    let worker: DataPlaneWorker | undefined;
    let token = 0;
    try {
      const recovery = options.actions === undefined ? { resetBytes: 0 } : await recoverRing(uio, options.actions);
      worker = await options.pool.assign();
      const stats = newStatsBuffer();
      // Events may arrive before attach() returns: they find the device through `holder`.
      const holder: { device?: AttachedDevice } = {};
      token = worker.register({
        gone: (reason) => holder.device !== undefined && options.onGone(holder.device, reason),
        released: (reason) => holder.device?.releasedByWorker(reason),
        writeCacheChanged: (enabled) => holder.device !== undefined && options.onWriteCacheChange?.(holder.device, enabled),
        aluaChanged: (state) => holder.device !== undefined && options.onAluaChange?.(holder.device, state),
      });
      const attributes = info.attributes;
      const summary = await worker.attach({
        token,
        spec: {
          name: info.deviceName,
          deviceKey: options.deviceKey,
          store,
          sizeBytes: attributes.devSizeBytes,
          blockSizeBytes: attributes.hwBlockSizeBytes,
          hwMaxSectors: attributes.hwMaxSectors,
          writeCacheEnabled: attributes.emulateWriteCache,
          unitSerial: attributes.unitSerial,
          alua: info.alua,
          allowedRoots: options.allowedRoots,
        },
        waitFd: uio.fd,
        waitReadBytes: UIO_READ_BYTES,
        edgeTriggered: true,
        doorbellFd: uio.fd,
        address: uio.baseAddress,
        mapBytes: uio.mapBytes,
        stats,
      });
      holder.device = new AttachedDevice(info, uio, recovery, worker, token, stats, summary, options);
      return holder.device;
    } catch (error) {
      if (worker !== undefined) worker.unregister(token);
      // The worker never kept the mapping: a failed attach closed its store before replying.
      uio.close();
      throw error;
    }
  }

  get sizeBytes(): number {
    return this.#store.sizeBytes;
  }

  get backstoreDescription(): string {
    return this.#store.description;
  }

  get backstoreKind(): string {
    return this.#store.kind;
  }

  /** The store's own size (a grow within it needs no reopen). */
  get storeSizeBytes(): number {
    return this.#store.storeSizeBytes;
  }

  get warnings(): readonly string[] {
    return this.#store.warnings;
  }

  /** The dev_config path (after the subtype) the device is served from now. */
  get configPath(): string {
    return this.#configPath;
  }

  get detaching(): boolean {
    return this.#detaching !== undefined || this.#released;
  }

  /** dev_size changed: a smaller or equal size needs no I/O; a larger one reopens the store. */
  async resize(sizeBytes: number): Promise<void> {
    this.#store = (await this.worker.call({ type: "resize", token: this.#token, sizeBytes }))!;
  }

  /** Serves the device from `configPath` at `sizeBytes` from now on (the worker vetoes what cannot open). */
  async reopen(configPath: string, sizeBytes: number): Promise<void> {
    this.#store = (await this.worker.call({ type: "reopen", token: this.#token, store: storeSource(configPath), sizeBytes }))!;
    this.#configPath = configPath;
  }

  /** The ALUA groups the device is served with (configfs alua/ at attach or at the last scan). */
  get aluaConfig(): AluaConfig | undefined {
    return this.#aluaConfig;
  }

  /** Its configfs ALUA groups changed: its worker serves the new ones from now on. */
  async setAluaConfig(config: AluaConfig | undefined): Promise<void> {
    await this.worker.call({ type: "alua-config", token: this.#token, config });
    this.#aluaConfig = config;
  }

  /** emulate_write_cache changed: turning the cache off makes what it holds durable first. */
  async setWriteCache(enabled: boolean): Promise<void> {
    await this.worker.call({ type: "write-cache", token: this.#token, enabled });
  }

  /**
   * Test hook (serve --fault-injection): "data-path" makes the device's next batch throw,
   * "worker" makes its worker's loop throw, ending the thread with all of its devices.
   */
  injectFault(kind: FaultKind): Promise<unknown> {
    return this.worker.call({ type: kind === "worker" ? "crash-worker" : "inject-fault", token: this.#token });
  }

  /** Stops waiting for new work, finishes what the kernel posted, then releases everything. */
  detach(options: DetachOptions = {}): Promise<void> {
    this.#detaching ??= this.#detach(options);
    return this.#detaching;
  }

  async #detach(options: DetachOptions): Promise<void> {
    if (options.block === true && this.#options.actions !== undefined) {
      try {
        await this.#options.actions.block();
      } catch (error) {
        this.#options.logger.warn(`block_dev before detaching failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    try {
      // The worker drains what was posted (nothing new arrives while blocked), flushes, closes.
      if (!this.#released) await this.worker.call({ type: "detach", token: this.#token, destroy: options.destroy === true });
    } finally {
      this.worker.unregister(this.#token);
      // Only now: the worker no longer touches the mapping.
      this.uio.close();
    }
  }

  /** Its worker's "released" event (a fault, or the worker died). */
  releasedByWorker(reason: string): void {
    if (this.#released) return;
    this.#released = true;
    this.#options.onReleased(this, reason);
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

/** The dev_config parsed here, on the control plane: a refusal names the bad part, and the worker never loads the parser. */
function storeSource(configPath: string): StoreSource {
  return { configPath, config: parseDevConfig(configPath) };
}
