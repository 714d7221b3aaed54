// serve's netlink side: resolves TCM-USER, listens on its "config" group, answers events, and
// owns the module-wide SUPP_KERN_CMD_REPLY switch.
//
// Reply policy. serve turns SUPP_KERN_CMD_REPLY on once it listens, because only then does the
// kernel wait for a verdict: `enable` returns after the device is really served (or fails with
// the reason), and a RECONFIG we cannot honour is vetoed instead of silently committed. The
// switch is module-wide and the kernel waits uninterruptibly, with no timeout, even when nobody
// listens, so: it is cleared on every exit path serve controls (stop, fatal error, process
// exit); every event gets a reply, our devices or not, whenever the kernel waits for one; a
// marker file records that the switch is on, so a serve that finds it after an unclean exit
// (kill -9) first answers the ADDED events that hung meanwhile (pending-added.ts) and then fails
// whatever other waits the dead process left (module parameters block_netlink/reset_netlink).
import { rmSync, writeFileSync } from "node:fs";
import { errnoName } from "../libc/errno.ts";
import { ENODEV } from "../libc/errno.ts";
import { NetlinkListener } from "../netlink/listener.ts";
import { parseGenl, splitMessages } from "../netlink/message.ts";
import { ControlSocket, NetlinkRequestError, openEventSocket } from "../netlink/socket.ts";
import * as libc from "../libc/libc.ts";
import { describeDaemons, type OtherDaemon } from "../configfs/other-daemons.ts";
import {
  decodeTcmuEvent,
  encodeAddedDone,
  encodeDone,
  encodeSetFeatures,
  TCMU_FAMILY_NAME,
  TCMU_MCGRP_CONFIG,
  type TcmuEvent,
} from "../netlink/tcmu-genl.ts";

export interface NetlinkLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface NetlinkControlOptions {
  /** Marker file: exists while SUPP_KERN_CMD_REPLY is on because of this program. */
  markerPath: string;
  onEvent: (event: TcmuEvent) => void;
  /** Events may have been lost: rescan. */
  onOverflow: (dropsTotal: number) => void;
  onFailed: (reason: string) => void;
  log: NetlinkLog;
  /**
   * Other TCMU daemons running now. The reply switch is module-wide: while one runs it stays on
   * when serve exits, or that daemon could no longer refuse an enable it cannot serve.
   */
  otherDaemons?: () => OtherDaemon[];
}

export class NetlinkControl {
  readonly familyId: number;
  readonly receiveBufferBytes: number;
  readonly #control: ControlSocket;
  readonly #eventFd: number;
  readonly #listener: NetlinkListener;
  readonly #options: NetlinkControlOptions;
  #repliesOn = false;

  private constructor(control: ControlSocket, familyId: number, groupId: number, options: NetlinkControlOptions) {
    this.#control = control;
    this.familyId = familyId;
    this.#options = options;
    const events = openEventSocket(groupId);
    this.#eventFd = events.fd;
    this.receiveBufferBytes = events.receiveBufferBytes;
    if (!events.noEnobufs) options.log.warn("NETLINK_NO_ENOBUFS refused: an event overflow will show as ENOBUFS and trigger a rescan");
    this.#listener = new NetlinkListener({
      socketFd: events.fd,
      onDatagram: (datagram) => this.#receive(datagram),
      onOverflow: options.onOverflow,
      onFailed: options.onFailed,
    });
  }

  /** Throws NetlinkRequestError (ENOENT) when target_core_user is not loaded. */
  static open(options: NetlinkControlOptions): NetlinkControl {
    const control = ControlSocket.open();
    try {
      const family = control.getFamily(TCMU_FAMILY_NAME);
      const groupId = family.groups.get(TCMU_MCGRP_CONFIG);
      if (groupId === undefined) throw new Error(`generic netlink family ${TCMU_FAMILY_NAME} has no "${TCMU_MCGRP_CONFIG}" group`);
      return new NetlinkControl(control, family.id, groupId, options);
    } catch (error) {
      control.close();
      throw error;
    }
  }

  get repliesOn(): boolean {
    return this.#repliesOn;
  }

  #receive(datagram: Uint8Array): void {
    try {
      for (const message of splitMessages(datagram)) {
        if (message.type !== this.familyId) continue;
        const event = decodeTcmuEvent(parseGenl(message.payload));
        if (event !== undefined) this.#options.onEvent(event);
      }
    } catch (error) {
      this.#options.log.error(`undecodable netlink datagram (${datagram.byteLength} bytes): ${String(error)}`);
    }
  }

  /** SET_FEATURES{SUPP_KERN_CMD_REPLY=1}; the marker is written first so no exit path misses it. */
  enableReplies(): void {
    writeFileSync(this.#options.markerPath, `${process.pid}\n`);
    this.#setFeatures(true);
    this.#repliesOn = true;
  }

  /** SET_FEATURES{SUPP_KERN_CMD_REPLY=0}: synchronous, safe in an exit handler. */
  disableReplies(): void {
    if (!this.#repliesOn) return;
    this.#repliesOn = false;
    try {
      const others = this.#options.otherDaemons?.() ?? [];
      if (others.length > 0) {
        this.#options.log.info(`SUPP_KERN_CMD_REPLY left on: ${describeDaemons(others)} answers its devices' events`);
      } else {
        this.#setFeatures(false);
      }
      rmSync(this.#options.markerPath, { force: true });
    } catch (error) {
      this.#options.log.error(`clearing SUPP_KERN_CMD_REPLY failed: ${String(error)}; a later enable may hang until serve runs again`);
    }
  }

  #setFeatures(on: boolean): void {
    const sequence = this.#control.nextSequence();
    this.#control.request(encodeSetFeatures(this.familyId, sequence, on), sequence, `SET_FEATURES SUPP_KERN_CMD_REPLY=${on ? 1 : 0}`);
  }

  /** Answers `event`; returns false when the kernel was not waiting (ENODEV). */
  reply(event: TcmuEvent, status: number): boolean {
    const sequence = this.#control.nextSequence();
    return this.#send(encodeDone(this.familyId, sequence, event, status), sequence, `${event.kind} reply for ${event.uioName}`);
  }

  /** ADDED_DEVICE_DONE for a device a scan found waiting (its event was never received). */
  replyAdded(deviceId: number, status: number): boolean {
    const sequence = this.#control.nextSequence();
    return this.#send(encodeAddedDone(this.familyId, sequence, deviceId, status), sequence, `ADDED reply for device index ${deviceId}`);
  }

  #send(message: Uint8Array, sequence: number, what: string): boolean {
    try {
      this.#control.request(message, sequence, what);
      return true;
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errno === ENODEV) {
        this.#options.log.debug(`${what}: the kernel was not waiting for it`);
        return false;
      }
      this.#options.log.error(`${what} failed: ${error instanceof NetlinkRequestError ? errnoName(error.errno) : String(error)}`);
      return false;
    }
  }

  async stop(): Promise<void> {
    this.disableReplies();
    await this.#listener.stop();
    libc.close(this.#eventFd);
    this.#control.close();
  }
}

/**
 * Fails every netlink wait left pending (module parameters block_netlink, reset_netlink): the
 * waiting writers get EINTR instead of hanging forever. Only after an unclean exit of a serve
 * that had replies on; returns false where the kernel lacks the parameters.
 */
export async function failStaleNetlinkWaits(sysfsRoot: string, write: (path: string, value: number) => Promise<void>): Promise<boolean> {
  const parameters = `${sysfsRoot}/module/target_core_user/parameters`;
  try {
    await write(`${parameters}/block_netlink`, 1);
  } catch {
    return false;
  }
  try {
    await write(`${parameters}/reset_netlink`, 1);
  } finally {
    await write(`${parameters}/block_netlink`, 0);
  }
  return true;
}
