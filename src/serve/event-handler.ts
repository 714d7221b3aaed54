// What serve does with each TCM-USER event, and the verdict it sends back. Events for one device
// are handled in order (the kernel sends the next only after our reply when it waits, but not
// when it does not); events for devices of another handler are answered with success, since
// with SUPP_KERN_CMD_REPLY on the kernel waits for someone's reply whoever serves them — unless
// another TCMU daemon runs: then they are its to answer (the first reply wins).
import { parseDevConfig } from "../config/dev-config.ts";
import type { TcmuEvent } from "../netlink/tcmu-genl.ts";
import { describeDaemons, type OtherDaemon } from "../configfs/other-daemons.ts";
import { parseUioName, type UioName } from "../uio/discover.ts";
import { describeDeviceAsync } from "./discover-async.ts";
import type { DeviceSet } from "./device-set.ts";
import { errorStatus, messageOf, VetoError, type ServeLog } from "./errors.ts";

export interface EventReplier {
  reply(event: TcmuEvent, status: number): boolean;
}

export interface EventCounters {
  added: number;
  removed: number;
  reconfig: number;
  vetoed: number;
}

export interface EventHandlerOptions {
  devices: DeviceSet;
  replier: EventReplier;
  log: ServeLog;
  /** One of our devices was removed (the state file forgets it). */
  onRemoved: (hbaId: number, deviceName: string) => void;
  /** Something changed that a scan should pick up (a dev_config fixed for a failed device). */
  requestScan: () => void;
  /** Other TCMU daemons running now (tcmu-runner); default: none. */
  otherDaemons?: () => OtherDaemon[];
}

export class EventHandler {
  readonly counters: EventCounters = { added: 0, removed: 0, reconfig: 0, vetoed: 0 };
  readonly #options: EventHandlerOptions;
  readonly #chains = new Map<number, Promise<void>>();

  constructor(options: EventHandlerOptions) {
    this.#options = options;
  }

  /** Queues `event` behind earlier events of the same device; resolves when it is answered. */
  handle(event: TcmuEvent): Promise<void> {
    const previous = this.#chains.get(event.deviceId) ?? Promise.resolve();
    const next = previous.then(() => this.#process(event));
    this.#chains.set(event.deviceId, next);
    void next.finally(() => {
      if (this.#chains.get(event.deviceId) === next) this.#chains.delete(event.deviceId);
    });
    return next;
  }

  /** Resolves once every queued event is answered. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#chains.values()]);
  }

  async #process(event: TcmuEvent): Promise<void> {
    const { devices, log } = this.#options;
    this.counters[event.kind] += 1;
    const name = parseUioName(event.uioName);
    log.debug(`${describeEvent(event)} for ${event.uioName} (uio${event.minor}, device index ${event.deviceId})`);
    const waits = this.#kernelWaits(event);
    let status = 0;
    if (name !== undefined && devices.options.claims.claims(name.subtype)) {
      try {
        await this.#handleOurs(event, name);
      } catch (error) {
        status = errorStatus(error);
        if (event.kind === "reconfig") this.counters.vetoed += 1;
        log.warn(`${name.deviceName}: ${describeEvent(event)} refused (${status}): ${messageOf(error)}${this.#otherDaemonNote(event)}`);
      }
    } else {
      const others = this.#options.otherDaemons?.() ?? [];
      if (others.length > 0) {
        log.debug(`${event.uioName}: ${describeEvent(event)} for another handler's device; left to ${describeDaemons(others)}`);
        return;
      }
      log.debug(`${event.uioName}: ${describeEvent(event)} for another handler's device; answered 0`);
    }
    if (waits) {
      const accepted = this.#options.replier.reply(event, status);
      log.debug(`${describeEvent(event)} for ${event.uioName}: replied ${status}${accepted ? "" : " (the kernel was not waiting)"}`);
    }
  }

  async #handleOurs(event: TcmuEvent, name: UioName): Promise<void> {
    const { devices, log } = this.#options;
    const uio = `uio${event.minor}`;
    if (event.kind === "added") {
      const info = await describeDeviceAsync(uio, name, devices.options.roots, devices.options.io);
      if (info === undefined) throw new Error(`${uio} vanished before it could be attached`);
      await devices.attachOrThrow(info);
      return;
    }
    const device = devices.byUio(uio);
    if (event.kind === "removed") {
      if (device !== undefined) await devices.detach(device, "removed", { destroy: true });
      devices.forgetReplies(uio);
      this.#options.onRemoved(name.hbaId, name.deviceName);
      return;
    }
    const change = event.change;
    if (device === undefined || device.detaching) {
      // Not served by us now: nothing to refuse; a later attach reads the new value.
      if (change.kind === "dev_config") this.#options.requestScan();
      return;
    }
    if (change.kind === "dev_size") {
      await device.resize(change.sizeBytes);
      log.info(`${name.deviceName}: dev_size is now ${change.sizeBytes} bytes (CAPACITY DATA HAS CHANGED raised)`);
    } else if (change.kind === "write_cache") {
      await device.setWriteCache(change.enabled);
      log.info(`${name.deviceName}: write cache ${change.enabled ? "enabled" : "disabled"}`);
    } else {
      const [subtype = "", ...rest] = change.devConfig.split("/");
      if (subtype !== name.subtype) {
        throw new VetoError(`dev_config "${change.devConfig}" names handler "${subtype}": a served device cannot change handler (remove and re-create it)`);
      }
      const configPath = devices.options.claims.backstoreConfig(subtype, rest.join("/"));
      parseDevConfig(configPath);
      await device.reopen(configPath, device.sizeBytes);
      log.info(`${name.deviceName}: now served from ${configPath} (${device.backstoreDescription})`);
    }
  }

  /**
   * Why one of our devices could vanish under us: another daemon's error reply to its enable won
   * and the kernel tore it down. Said with the fix, since only the device's creator can apply it.
   */
  #otherDaemonNote(event: TcmuEvent): string {
    if (event.kind !== "added") return "";
    const others = this.#options.otherDaemons?.() ?? [];
    if (others.length === 0) return "";
    return (
      ` (${describeDaemons(others)} also answers TCMU netlink events: its error reply to this enable can win and tear the device down;` +
      " create devices with nl_reply_supported=-1 in control before enable, as `tcmu-appliance create` and the config file do when they see it)"
    );
  }

  /**
   * Whether the kernel waits for a reply: the device's nl_reply_supported (a snapshot of the
   * module switch taken at enable) must be > 0. Not read from configfs here: a lookup under a
   * device can wait for an rmdir or a reconfiguration that itself waits for this very reply.
   * ADDED always gets one (the device was enabled while our switch was on); later events use
   * what was read when the device was attached; when unsure, reply: a reply the kernel did not
   * wait for only costs an ENODEV answer.
   */
  #kernelWaits(event: TcmuEvent): boolean {
    if (event.kind === "added") return true;
    return this.#options.devices.replyExpected(`uio${event.minor}`) ?? true;
  }
}

function describeEvent(event: TcmuEvent): string {
  if (event.kind !== "reconfig") return event.kind === "added" ? "ADDED_DEVICE" : "REMOVED_DEVICE";
  const change = event.change;
  if (change.kind === "dev_size") return `RECONFIG dev_size=${change.sizeBytes}`;
  if (change.kind === "write_cache") return `RECONFIG emulate_write_cache=${change.enabled ? 1 : 0}`;
  return `RECONFIG dev_config=${change.devConfig}`;
}
