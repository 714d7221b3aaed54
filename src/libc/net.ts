// Sockets through bun:ffi (binding.ts): what generic netlink (the TCM-USER family) and
// sd_notify (a unix datagram) need.
import { errno, libc as sym } from "./binding.ts";
import { EAGAIN, EINTR, SystemCallError } from "./errno.ts";

export const AF_UNIX = 1;
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_GENERIC = 16;

export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
/** Like SO_RCVBUF but past net.core.rmem_max; needs CAP_NET_ADMIN. */
export const SO_RCVBUFFORCE = 33;
/** u32[9] of socket memory counters; index 8 is sk_drops (messages dropped on overrun). */
export const SO_MEMINFO = 55;
export const SK_MEMINFO_VARS = 9;
export const SK_MEMINFO_DROPS = 8;

export const SOL_NETLINK = 270;
export const NETLINK_ADD_MEMBERSHIP = 1;
export const NETLINK_NO_ENOBUFS = 5;

export const MSG_DONTWAIT = 0x40;
/** x86_64 ENOBUFS: a netlink socket's receive queue overflowed and messages were lost. */
export const ENOBUFS = 105;

/** struct sockaddr_nl: family u16, pad u16, pid u32, groups u32. */
export const SOCKADDR_NL_BYTES = 12;
/** struct sockaddr_un: family u16, path[108]. */
const SOCKADDR_UN_PATH_BYTES = 108;


function check(call: string, subject: string | undefined, result: number): number {
  if (result < 0) throw new SystemCallError(call, subject, errno());
  return result;
}

function ssize(value: number | bigint): number {
  return typeof value === "number" ? value : Number(value);
}

export function socket(domain: number, type: number, protocol: number, subject?: string): number {
  return check("socket", subject, sym.socket(domain, type | SOCK_CLOEXEC, protocol));
}

/** A netlink address: port id 0 is the kernel when sending, "assign one" when binding. */
export function netlinkAddress(portId = 0, groups = 0): Uint8Array {
  const address = new Uint8Array(SOCKADDR_NL_BYTES);
  const view = new DataView(address.buffer);
  view.setUint16(0, AF_NETLINK, true);
  view.setUint32(4, portId, true);
  view.setUint32(8, groups, true);
  return address;
}

/**
 * A unix socket address. A leading '@' names the abstract namespace (systemd's NOTIFY_SOCKET
 * convention): the '@' becomes a NUL and the length counts only the bytes used.
 */
export function unixAddress(path: string): { address: Uint8Array; lengthBytes: number } {
  const pathBytes = new TextEncoder().encode(path);
  if (pathBytes.length === 0 || pathBytes.length >= SOCKADDR_UN_PATH_BYTES) {
    throw new Error(`unix socket path "${path}" must be 1..${SOCKADDR_UN_PATH_BYTES - 1} bytes`);
  }
  const address = new Uint8Array(2 + SOCKADDR_UN_PATH_BYTES);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(pathBytes, 2);
  const abstract = path.startsWith("@");
  if (abstract) address[2] = 0;
  return { address, lengthBytes: abstract ? 2 + pathBytes.length : 2 + pathBytes.length + 1 };
}

export function bind(fd: number, address: Uint8Array, subject?: string): void {
  check("bind", subject, sym.bind(fd, address, address.byteLength));
}

export function setsockoptInt(fd: number, level: number, option: number, value: number, subject?: string): void {
  const word = new Int32Array([value]);
  check("setsockopt", subject, sym.setsockopt(fd, level, option, word, 4));
}

export function getsockoptInt(fd: number, level: number, option: number, subject?: string): number {
  const word = new Int32Array(1);
  const length = new Uint32Array([4]);
  check("getsockopt", subject, sym.getsockopt(fd, level, option, word, length));
  return word[0]!;
}

/** Fills `target` (u32 per counter) with SO_MEMINFO; returns false where the kernel lacks it. */
export function socketMemoryInfo(fd: number, target: Uint32Array): boolean {
  const length = new Uint32Array([target.byteLength]);
  return sym.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, target, length) === 0;
}

export function sendto(fd: number, message: Uint8Array, address: Uint8Array, addressBytes: number, subject?: string): number {
  for (;;) {
    const result = ssize(sym.sendto(fd, message, message.byteLength, 0, address, addressBytes));
    if (result >= 0) return result;
    if (errno() !== EINTR) throw new SystemCallError("sendto", subject, errno());
  }
}

/** recv(2); returns -errno instead of throwing (EAGAIN with MSG_DONTWAIT, ENOBUFS on overrun). */
export function recvRaw(fd: number, target: Uint8Array, flags: number): number {
  for (;;) {
    const result = ssize(sym.recv(fd, target, target.byteLength, flags));
    if (result >= 0) return result;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}

export { EAGAIN };
