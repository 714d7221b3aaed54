// Generic netlink sockets. The control socket sends requests (GETFAMILY, SET_FEATURES, *_DONE)
// and reads their answers at once: the kernel runs a generic netlink handler inside sendto(), so
// the reply is already queued when sendto returns and a non-blocking recv finds it. The event
// socket only listens (multicast "config" group) and is read on the main thread when SIGIO says
// it has data (listener.ts).
import * as net from "../libc/net.ts";
import * as libc from "../libc/libc.ts";
import { errnoName } from "../libc/errno.ts";
import { decodeFamily, encodeGetFamily, type FamilyInfo } from "./genl-ctrl.ts";
import { NLMSG_DONE, NLMSG_ERROR, readErrorCode, splitMessages, type NetlinkMessage } from "./message.ts";

/** Receive buffer asked for the event socket: room for thousands of events in a burst. */
export const EVENT_RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024;
/** Largest datagram read at once (NLMSG_GOODSIZE is about a page; replies are smaller). */
export const DATAGRAM_BYTES_MAX = 64 * 1024;

/** A request the kernel answered with an error (NLMSG_ERROR with a negative errno). */
export class NetlinkRequestError extends Error {
  readonly errno: number;

  constructor(what: string, errno: number) {
    super(`${what}: the kernel answered ${errnoName(errno)}`);
    this.name = "NetlinkRequestError";
    this.errno = errno;
  }
}

export class ControlSocket {
  readonly fd: number;
  readonly #kernel = net.netlinkAddress();
  readonly #buffer = new Uint8Array(DATAGRAM_BYTES_MAX);
  #sequence = 1;
  #closed = false;

  private constructor(fd: number) {
    this.fd = fd;
  }

  static open(): ControlSocket {
    const fd = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC, "generic netlink");
    try {
      net.bind(fd, net.netlinkAddress(), "generic netlink");
      return new ControlSocket(fd);
    } catch (error) {
      libc.close(fd);
      throw error;
    }
  }

  nextSequence(): number {
    this.#sequence = (this.#sequence + 1) >>> 0 || 1;
    return this.#sequence;
  }

  /** Resolves a family; NetlinkRequestError with ENOENT when no module registered it. */
  getFamily(name: string): FamilyInfo {
    const sequence = this.nextSequence();
    const reply = this.request(encodeGetFamily(name, sequence), sequence, `GETFAMILY ${name}`);
    if (reply === undefined) throw new Error(`GETFAMILY ${name}: no reply`);
    return decodeFamily(reply.payload);
  }

  /**
   * Sends `message` and returns the reply with `sequence` (undefined for a bare acknowledgement).
   * Throws NetlinkRequestError for an NLMSG_ERROR carrying an errno.
   */
  request(message: Uint8Array, sequence: number, what: string): NetlinkMessage | undefined {
    net.sendto(this.fd, message, this.#kernel, net.SOCKADDR_NL_BYTES, what);
    for (;;) {
      const length = net.recvRaw(this.fd, this.#buffer, net.MSG_DONTWAIT);
      if (length === -net.EAGAIN) throw new Error(`${what}: the kernel did not answer`);
      if (length < 0) throw new NetlinkRequestError(what, -length);
      for (const reply of splitMessages(this.#buffer.subarray(0, length))) {
        if (reply.sequence !== sequence) continue; // a late answer to an earlier request
        if (reply.type === NLMSG_ERROR) {
          const code = readErrorCode(reply);
          if (code !== 0) throw new NetlinkRequestError(what, -code);
          return undefined;
        }
        if (reply.type !== NLMSG_DONE) return { ...reply, payload: reply.payload.slice() };
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }
}

export interface EventSocketInfo {
  fd: number;
  /** Bytes the kernel granted (SO_RCVBUF reads back twice what was set: it counts overhead). */
  receiveBufferBytes: number;
  /** NETLINK_NO_ENOBUFS took: overflow shows only as a growing drop counter, never as an error. */
  noEnobufs: boolean;
}

/**
 * A socket subscribed to one multicast group, with a large receive buffer so a burst of events
 * (dozens of devices enabled at once) queues instead of being dropped, and NETLINK_NO_ENOBUFS so
 * an overflow never turns into a receive error. Drops still happen past the buffer: the worker
 * watches SO_MEMINFO's drop counter and the caller rescans when it moves.
 */
export function openEventSocket(groupId: number): EventSocketInfo {
  const fd = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC, "netlink events");
  try {
    net.bind(fd, net.netlinkAddress(), "netlink events");
    try {
      net.setsockoptInt(fd, net.SOL_SOCKET, net.SO_RCVBUFFORCE, EVENT_RECEIVE_BUFFER_BYTES, "SO_RCVBUFFORCE");
    } catch {
      // Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
      net.setsockoptInt(fd, net.SOL_SOCKET, net.SO_RCVBUF, EVENT_RECEIVE_BUFFER_BYTES, "SO_RCVBUF");
    }
    let noEnobufs = true;
    try {
      net.setsockoptInt(fd, net.SOL_NETLINK, net.NETLINK_NO_ENOBUFS, 1, "NETLINK_NO_ENOBUFS");
    } catch {
      noEnobufs = false;
    }
    net.setsockoptInt(fd, net.SOL_NETLINK, net.NETLINK_ADD_MEMBERSHIP, groupId, "NETLINK_ADD_MEMBERSHIP");
    const receiveBufferBytes = net.getsockoptInt(fd, net.SOL_SOCKET, net.SO_RCVBUF, "SO_RCVBUF");
    return { fd, receiveBufferBytes, noEnobufs };
  } catch (error) {
    libc.close(fd);
    throw error;
  }
}
