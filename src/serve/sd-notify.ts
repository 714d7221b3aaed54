// systemd readiness (sd_notify(3) without libsystemd): a datagram of "KEY=value" lines to the
// unix socket named by $NOTIFY_SOCKET. Without that variable (not under a Type=notify unit)
// every call is a no-op.
import * as libc from "../libc/libc.ts";
import * as net from "../libc/net.ts";

export function sdNotify(state: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (socketPath === undefined || socketPath === "") return false;
  const { address, lengthBytes } = net.unixAddress(socketPath);
  const fd = net.socket(net.AF_UNIX, net.SOCK_DGRAM, 0, "NOTIFY_SOCKET");
  try {
    net.sendto(fd, new TextEncoder().encode(state), address, lengthBytes, socketPath);
    return true;
  } finally {
    libc.close(fd);
  }
}
