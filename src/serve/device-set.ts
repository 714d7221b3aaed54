// The devices one serve process has attached, and the two ways they come and go: netlink
// events (event-handler.ts) and sysfs scans, the fallback that catches what events missed
// (before serve started, an overflow, a kernel without the family).
import { join } from "node:path";
import type { DataPlanePool } from "../data-plane/pool.ts";
import { EAGAIN, EBUSY, EINTR, ENODEV, ENOENT, SystemCallError } from "../libc/errno.ts";
import { deviceAluaFrom, readAluaGroups, setAluaGroupState } from "../configfs/alua-groups.ts";
import type { ConfigfsIo } from "../configfs/io.ts";
import type { OtherDaemon } from "../configfs/other-daemons.ts";
import { formatBytes } from "../cli/format.ts";
import type { RingLogger } from "../ring/engine.ts";
import type { AluaAccessState, AluaConfig } from "../scsi/alua.ts";
import { parseUioName, type SystemRoots, type TcmuDeviceInfo } from "../uio/discover.ts";
import { AttachedDevice } from "./attached-device.ts";
import { describeDeviceAsync, discoverDevicesAsync } from "./discover-async.ts";
import { errorStatus, messageOf, type ServeLog } from "./errors.ts";
import type { HandlerClaims } from "./handler-claims.ts";
import { findPendingAdded } from "./pending-added.ts";
import { configfsRingActions } from "./ring-recovery.ts";

/** How long an attach retries a UIO node that is busy or missing while its device exists. */
export const ATTACH_RETRY_MS = 5000;
const ATTACH_RETRY_FIRST_DELAY_MS = 20;
const ATTACH_RETRY_DELAY_MAX_MS = 500;
const TRANSIENT_UIO_ERRNOS: readonly number[] = [ENOENT, EBUSY, EAGAIN, EINTR];

/** open() of the device's UIO node failing in a way that can pass: the node is coming or its last user going. */
export function isTransientUioError(error: unknown, devicePath: string): boolean {
  return error instanceof SystemCallError && error.call === "open" && error.subject === devicePath && TRANSIENT_UIO_ERRNOS.includes(error.errno);
}

/**
 * How often the devices whose store was out of reach at attach (a Ceph cluster not answering:
 * a transient open failure) are tried again, by a scan, until they attach or go away.
 */
export const STORE_RETRY_MS = 10_000;

/** A device whose enable has waited this long when a scan sees it gets its ADDED reply from the scan. */
export const PENDING_ADDED_GRACE_MS = 3000;

export interface NotServedDevice {
  hbaId: number;
  name: string;
  reason: string;
}

export interface Replier {
  readonly repliesOn: boolean;
  replyAdded(deviceId: number, status: number): boolean;
}

export interface DeviceSetOptions {
  /** The subtypes served and how their config strings become backstores. */
  claims: HandlerClaims;
  allowedRoots: string[];
  roots: SystemRoots;
  io: ConfigfsIo;
  log: ServeLog;
  ringLog: ServeLog;
  /** Called after every attach and detach (serve writes served.json for `list`). */
  onChange: () => void;
  /** The worker threads devices are served on. */
  pool: DataPlanePool;
  /** Other TCMU daemons running now: their devices' stuck enables are theirs to answer. */
  otherDaemons?: () => OtherDaemon[];
  /** How long a busy or missing UIO node is retried; default ATTACH_RETRY_MS. */
  attachRetryMs?: number;
}

/** After an attach, how long and how often its ALUA groups are looked for (#watchForAlua). */
const ALUA_WATCH_MS = 20_000;
const ALUA_WATCH_INTERVAL_MS = 500;
/**
 * How often a scan reads every attached device's ALUA groups again (an administrator's change).
 * Not every scan: each read of configfs starts a configfs thread (~2.5 MB while it lives), and
 * an idle serve should hold none.
 */
const ALUA_REFRESH_INTERVAL_MS = 60_000;

export class DeviceSet {
  readonly options: DeviceSetOptions;
  readonly #devices = new Map<string, AttachedDevice>();
  readonly #attaching = new Map<string, Promise<AttachedDevice | undefined>>();
  /** Devices whose ALUA groups are being read now (#refreshAluaOf). */
  readonly #aluaRefreshing = new Set<AttachedDevice>();
  /** Attached devices whose ALUA groups are still looked for, with when to stop. */
  readonly #aluaWatched = new Map<AttachedDevice, number>();
  /** A look at the watched devices is scheduled or running. */
  #aluaLookPending = false;
  /** When a scan last read every device's ALUA groups. */
  #aluaRefreshedAt = Number.NEGATIVE_INFINITY;
  /** uio → the identity that failed to attach, so a broken device is not retried every scan. */
  readonly #failed = new Map<string, string>();
  /** uio → why its last attach failed (thrown again for an ADDED reply's errno). */
  readonly #lastError = new Map<string, unknown>();
  /** uio → the device whose last attach failed, and why (for `list`). */
  readonly #notServed = new Map<string, NotServedDevice>();
  /** uio → whether the kernel waits for replies about it (nl_reply_supported > 0 when attached). */
  readonly #replyExpected = new Map<string, boolean>();
  /** deviceId → when a scan first saw its enable waiting. */
  readonly #pendingSince = new Map<number, number>();
  /** The TCMU devices a scan saw enabled: their enable is not read again (findPendingAdded). */
  readonly #enabledSeen = new Set<string>();
  /** The scan that tries again the devices whose store was out of reach; at most one pending. */
  #retryScan: ReturnType<typeof setTimeout> | undefined;
  replier: Replier | undefined;
  stopping = false;

  constructor(options: DeviceSetOptions) {
    this.options = options;
  }

  get devices(): AttachedDevice[] {
    return [...this.#devices.values()];
  }

  byUio(uio: string): AttachedDevice | undefined {
    return this.#devices.get(uio);
  }

  /** Attaches `info` unless attached or being attached; undefined when it failed. */
  attach(info: TcmuDeviceInfo): Promise<AttachedDevice | undefined> {
    const attached = this.#devices.get(info.uio);
    if (attached !== undefined) return Promise.resolve(attached);
    let attaching = this.#attaching.get(info.uio);
    if (attaching === undefined) {
      attaching = this.#attach(info).finally(() => this.#attaching.delete(info.uio));
      this.#attaching.set(info.uio, attaching);
    }
    return attaching;
  }

  /** Like attach(), but throws the reason, for an ADDED reply. */
  async attachOrThrow(info: TcmuDeviceInfo): Promise<AttachedDevice> {
    this.#failed.delete(info.uio);
    const device = await this.attach(info);
    if (device === undefined) throw this.#lastError.get(info.uio) ?? new Error(`${info.uio} could not be attached`);
    return device;
  }

  /** Devices whose last attach failed, with the reason (a removed one drops out on its REMOVED). */
  get notServed(): NotServedDevice[] {
    return [...this.#notServed.values()];
  }

  /** Undefined for a device we never attached. */
  replyExpected(uio: string): boolean | undefined {
    return this.#replyExpected.get(uio);
  }

  /** The device's REMOVED event was handled: its UIO number may now go to another device. */
  forgetReplies(uio: string): void {
    this.#replyExpected.delete(uio);
    this.#lastError.delete(uio);
    if (this.#notServed.delete(uio)) this.options.onChange();
  }

  async #attach(info: TcmuDeviceInfo): Promise<AttachedDevice | undefined> {
    const { log } = this.options;
    const identity = `${info.uio}:${info.deviceName}:${info.configPath}`;
    if (this.stopping || this.#failed.get(info.uio) === identity) return undefined;
    log.debug(`attaching ${info.uio} ${info.deviceName} (${info.configPath})`);
    try {
      const device = await this.#attachRetrying(info);
      const difference = this.options.claims.difference(info.subtype);
      if (difference !== undefined) log.warn(`${info.deviceName} (${info.subtype}/${info.configPath}): ${difference}`);
      if (this.stopping) {
        await device.detach({ block: true });
        return undefined;
      }
      this.#devices.set(info.uio, device);
      const replySupported = await this.options.io.readAttribute(join(info.configfsDir, "attrib", "nl_reply_supported"));
      if (replySupported !== undefined) this.#replyExpected.set(info.uio, Number(replySupported) > 0);
      this.#failed.delete(info.uio);
      this.#lastError.delete(info.uio);
      this.#notServed.delete(info.uio);
      log.info(
        `attached ${info.uio} ${info.deviceName} config=${info.configPath} size=${formatBytes(device.sizeBytes)} ` +
          `block=${info.attributes.hwBlockSizeBytes} backstore=${device.backstoreDescription} worker=${device.worker.index}`,
      );
      // Backstores report what they serve differently from what was asked (a qcow2 image
      // larger than dev_size, say) as warnings.
      for (const warning of device.warnings) log.warn(`${info.deviceName}: ${warning}`);
      if (device.aluaConfig !== undefined) log.info(`${info.deviceName}: ${describeAlua(device.aluaConfig)}`);
      this.#watchForAlua(device);
      if (device.recovery.resetBytes > 0) {
        log.warn(`${info.deviceName}: ${device.recovery.resetBytes} bytes of commands left by a previous handler were reset with BUSY for the initiator to retry`);
      }
      this.options.onChange();
      return device;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // Out of reach for now: not marked failed, so the next scan tries again (and one is due).
      const transient = errorStatus(error) === -EAGAIN;
      const again = transient && messageOf(this.#lastError.get(info.uio)) === message;
      if (!transient) this.#failed.set(info.uio, identity);
      this.#lastError.set(info.uio, error);
      const reason = transient ? `${message} (trying again every ${STORE_RETRY_MS / 1000} s)` : message;
      this.#notServed.set(info.uio, { hbaId: info.hbaId, name: info.deviceName, reason });
      // Said once; the same failure on every retry only at debug level.
      (again ? log.debug : log.error).call(log, `${info.uio} ${info.deviceName} (config ${info.configPath}): not served: ${reason}`);
      if (transient) this.#scheduleRetryScan();
      this.options.onChange();
      return undefined;
    }
  }

  /**
   * AttachedDevice.attach, again while the UIO node is only briefly unavailable — busy while a
   * killed handler's exit still closes it, or not there yet — and the device still exists. A
   * device that vanished or stays busy past the retry budget fails with the real cause.
   */
  async #attachRetrying(info: TcmuDeviceInfo): Promise<AttachedDevice> {
    const budgetMs = this.options.attachRetryMs ?? ATTACH_RETRY_MS;
    const deadline = performance.now() + budgetMs;
    for (let delayMs = ATTACH_RETRY_FIRST_DELAY_MS; ; delayMs = Math.min(2 * delayMs, ATTACH_RETRY_DELAY_MAX_MS)) {
      try {
        return await AttachedDevice.attach(info, {
          pool: this.options.pool,
          deviceKey: `user_${info.hbaId}/${info.deviceName}`,
          allowedRoots: this.options.allowedRoots,
          logger: this.#ringLoggerFor(info.deviceName),
          actions: configfsRingActions(info.configfsDir, this.options.io),
          onGone: (gone, reason) => void this.detach(gone, reason, { destroy: true }),
          onReleased: (released, reason) => void this.#reattach(released, reason),
          onWriteCacheChange: (changed, enabled) => this.#mirrorWriteCache(changed, enabled),
          onAluaChange: (changed, state) => this.#mirrorAluaState(changed, state),
          backstoreConfig: this.options.claims.backstoreConfig(info.subtype, info.configPath),
        });
      } catch (error) {
        if (!isTransientUioError(error, info.devicePath) || this.stopping) throw error;
        const current = await describeDeviceAsync(info.uio, info, this.options.roots, this.options.io);
        if (current === undefined) throw new Error(`${info.uio} vanished before it could be attached (${messageOf(error)})`);
        const leftMs = deadline - performance.now();
        if (leftMs <= 0) throw new Error(`${messageOf(error)}, still after ${budgetMs} ms of retries`);
        const waitMs = Math.min(delayMs, leftMs);
        this.options.log.debug(`${info.uio} ${info.deviceName}: ${messageOf(error)}; retrying in ${Math.ceil(waitMs)} ms`);
        await Bun.sleep(waitMs);
      }
    }
  }

  #ringLoggerFor(name: string): RingLogger {
    const ringLog = this.options.ringLog;
    return { warn: (message) => ringLog.warn(`${name}: ${message}`), error: (message) => ringLog.error(`${name}: ${message}`) };
  }

  /**
   * MODE SELECT changed WCE: mirrored into attrib/emulate_write_cache so configfs and the next
   * attach agree. The write sends us a RECONFIG and waits for our reply: it must not block.
   */
  #mirrorWriteCache(device: AttachedDevice, enabled: boolean): void {
    const path = join(device.info.configfsDir, "attrib", "emulate_write_cache");
    this.options.io.writeAttribute(path, enabled ? 1 : 0).catch((error: unknown) => {
      this.options.log.warn(`${device.info.deviceName}: mirroring WCE=${enabled ? 1 : 0} to configfs failed: ${String(error)}`);
    });
  }

  /**
   * Its ALUA group changed state (the medium's lock taken or lost, SET TARGET PORT GROUPS):
   * mirrored into the group's configfs alua_access_state, so the kernel's own access check, the
   * unit attentions it raises per I_T nexus, `list` and targetcli agree with what we report.
   * "transitioning" is not mirrored: the kernel would refuse the very I/O that completes it.
   */
  #mirrorAluaState(device: AttachedDevice, state: AluaAccessState): void {
    const alua = device.aluaConfig;
    const group = alua?.groups.find((candidate) => candidate.id === alua.localGroupId);
    if (group === undefined || state === "transitioning") return;
    this.options.log.info(`${device.info.deviceName}: ALUA group ${group.name} (id ${group.id}) is now ${state}`);
    setAluaGroupState(this.options.io, device.info.configfsDir, group.name, state).catch((error: unknown) => {
      this.options.log.warn(`${device.info.deviceName}: mirroring ALUA state ${state} of ${group.name} to configfs failed: ${String(error)}`);
    });
  }

  /**
   * Its worker let go of it after a fault (or died): release our side, then attach it again;
   * the ring still holds what was in flight, so the attach resets it (block_dev + reset_ring)
   * and initiators retry those commands.
   */
  async #reattach(device: AttachedDevice, reason: string): Promise<void> {
    this.options.log.error(`${device.info.uio} ${device.info.deviceName}: released by its data-plane worker (${reason}); attaching it again`);
    await this.detach(device, "released after a data-plane fault", {});
    if (this.stopping) return;
    this.#failed.delete(device.info.uio);
    await this.attach(device.info);
  }

  /** Drops `device` and releases it; `destroy` deletes what only it used (it was removed). */
  async detach(device: AttachedDevice, reason: string, options: { block?: boolean; destroy?: boolean }): Promise<void> {
    // #replyExpected stays: the REMOVED event that follows a UIO teardown needs it (forgetReplies).
    if (this.#devices.get(device.info.uio) === device) this.#devices.delete(device.info.uio);
    try {
      await device.detach(options);
      this.options.log.info(`${device.info.uio} ${reason}; released: ${device.summary()}`);
    } catch (error) {
      this.options.log.error(`${device.info.uio} ${device.info.deviceName}: release failed: ${String(error)}`);
    }
    this.options.onChange();
  }

  /** Attaches every device of a claimed subtype not attached yet, then answers stuck ADDED events. */
  async scan(options: { immediate?: boolean } = {}): Promise<void> {
    if (this.stopping) return;
    const { roots, claims } = this.options;
    const unattached = (uio: string) => !this.#devices.has(uio) && !this.#attaching.has(uio);
    const unreadable = (uio: string, error: unknown) => this.options.log.warn(`${uio}: not attached this scan: ${messageOf(error)}`);
    for (const info of await discoverDevicesAsync((subtype) => claims.claims(subtype), roots, this.options.io, unattached, unreadable)) {
      if (!this.#devices.has(info.uio)) await this.attach(info);
    }
    if (performance.now() - this.#aluaRefreshedAt >= ALUA_REFRESH_INTERVAL_MS) {
      this.#aluaRefreshedAt = performance.now();
      await this.#refreshAlua();
    }
    if (this.replier?.repliesOn === true) await this.answerPendingAdded(options.immediate === true);
  }

  /**
   * Re-reads the ALUA groups of every attached device (a scan, once per ALUA_REFRESH_INTERVAL_MS):
   * an administrator may change them. A device whose groups changed is served with the new ones
   * (TPGS, RTPG) from now on.
   */
  async #refreshAlua(): Promise<void> {
    for (const device of this.devices) await this.#refreshAluaOf(device);
  }

  /** Re-reads one device's ALUA groups; true when it has some now. */
  async #refreshAluaOf(device: AttachedDevice): Promise<boolean> {
    if (device.detaching) return false;
    // The attach's watch and a scan may look at once: one applies, the other finds it done.
    if (this.#aluaRefreshing.has(device)) return device.aluaConfig !== undefined;
    this.#aluaRefreshing.add(device);
    try {
      return await this.#applyAluaOf(device);
    } finally {
      this.#aluaRefreshing.delete(device);
    }
  }

  async #applyAluaOf(device: AttachedDevice): Promise<boolean> {
    let current: AluaConfig | undefined;
    try {
      current = deviceAluaFrom(await readAluaGroups(this.options.io, device.info.configfsDir));
    } catch (error) {
      this.options.log.debug(`${device.info.deviceName}: ALUA groups not readable now: ${messageOf(error)}`);
      return device.aluaConfig !== undefined;
    }
    // States are ours (the worker's, mirrored into configfs): only a change of the groups
    // themselves — made, removed, renamed, another port — is taken up.
    if (aluaShape(current) === aluaShape(device.aluaConfig)) return current !== undefined;
    try {
      await device.setAluaConfig(current);
      this.options.log.info(`${device.info.deviceName}: ${current === undefined ? "no ALUA groups any more" : describeAlua(current)}`);
    } catch (error) {
      this.options.log.warn(`${device.info.deviceName}: new ALUA groups not applied: ${messageOf(error)}`);
    }
    return current !== undefined;
  }

  /**
   * `create` makes a device's ALUA groups and puts its LUNs in them right after the enable that
   * attached it: they are looked for every ALUA_WATCH_INTERVAL_MS for ALUA_WATCH_MS after the
   * attach, so an initiator logging in right after `create` already sees TPGS and the groups
   * (the periodic scan would take up to 10 s). One look at a time over all watched devices: a
   * burst of attaches must not keep a configfs thread (~2.5 MB) busy for each of them.
   */
  #watchForAlua(device: AttachedDevice): void {
    if (device.aluaConfig !== undefined) return;
    this.#aluaWatched.set(device, performance.now() + ALUA_WATCH_MS);
    this.#scheduleAluaLook();
  }

  #scheduleAluaLook(): void {
    if (this.#aluaLookPending) return;
    this.#aluaLookPending = true;
    setTimeout(() => void this.#lookForAlua(), ALUA_WATCH_INTERVAL_MS).unref();
  }

  async #lookForAlua(): Promise<void> {
    try {
      // Devices attached meanwhile are visited too: a Map iterates what is added during the walk.
      for (const [device, deadline] of this.#aluaWatched) {
        const over = this.stopping || device.detaching || performance.now() > deadline;
        if (over || (await this.#refreshAluaOf(device))) this.#aluaWatched.delete(device);
      }
    } finally {
      this.#aluaLookPending = false;
      if (this.#aluaWatched.size > 0 && !this.stopping) this.#scheduleAluaLook();
      // The attaches have settled: collect what they left on this thread now. An idle serve
      // allocates too little for the collector to run by itself, and ~1 MB would stay.
      else Bun.gc(true);
    }
  }

  /** Answers ADDED waits nobody answered; `immediate` skips the grace period (after an unclean exit). */
  async answerPendingAdded(immediate: boolean): Promise<void> {
    const { roots, claims, log } = this.options;
    const now = Date.now();
    const seen = new Set<number>();
    for (const pending of await findPendingAdded(roots, this.options.io, this.#enabledSeen)) {
      seen.add(pending.deviceId);
      const since = this.#pendingSince.get(pending.deviceId) ?? now;
      this.#pendingSince.set(pending.deviceId, since);
      if (!immediate && now - since < PENDING_ADDED_GRACE_MS) continue;
      const ours = claims.claims(pending.devConfig.split("/")[0] ?? "");
      if (!ours && (this.options.otherDaemons?.() ?? []).length > 0) continue;
      let status = 0;
      if (ours) {
        const parsed = parseUioName(`tcm-user/${pending.hbaId}/${pending.deviceName}/${pending.devConfig}`)!;
        const info = await describeDeviceAsync(pending.uio, parsed, roots, this.options.io);
        status = info === undefined ? -ENODEV : await this.attachOrThrow(info).then(() => 0, errorStatus);
      }
      log.warn(`${pending.deviceName}: its enable was waiting for an ADDED reply nobody sent (missed event); answered ${status}`);
      this.replier?.replyAdded(pending.deviceId, status);
      this.#pendingSince.delete(pending.deviceId);
    }
    for (const deviceId of this.#pendingSince.keys()) if (!seen.has(deviceId)) this.#pendingSince.delete(deviceId);
  }

  #scheduleRetryScan(): void {
    if (this.#retryScan !== undefined || this.stopping) return;
    this.#retryScan = setTimeout(() => {
      this.#retryScan = undefined;
      this.scan().catch((error) => this.options.log.warn(`retrying devices whose store was out of reach: ${messageOf(error)}`));
    }, STORE_RETRY_MS);
    this.#retryScan.unref();
  }

  /** Graceful stop: every device blocked, drained, flushed and closed. */
  async detachAll(reason: string): Promise<number> {
    this.stopping = true;
    clearTimeout(this.#retryScan);
    await Promise.allSettled([...this.#attaching.values()]);
    const results = await Promise.allSettled(this.devices.map((device) => this.detach(device, reason, { block: true })));
    return results.filter((result) => result.status === "rejected").length;
  }
}

/** The groups of an ALUA setup without their states, for comparing two setups. */
function aluaShape(config: AluaConfig | undefined): string {
  if (config === undefined) return "";
  const groups = config.groups.map((group) => `${group.id}:${group.name}:${group.preferred ? 1 : 0}`).sort();
  return `${config.localGroupId}/${config.protocolIdentifier}/${groups.join(",")}`;
}

/** "ALUA group 1 (gw-a id 1 active-optimized, gw-b id 2 active-non-optimized)", for the log. */
function describeAlua(config: AluaConfig): string {
  return `ALUA group ${config.localGroupId} (${config.groups.map((group) => `${group.name} id ${group.id} ${group.state}`).join(", ")})`;
}
