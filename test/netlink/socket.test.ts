// Against this machine's kernel: generic netlink is always there, TCM-USER only with
// target_core_user loaded, so these tests use the controller family itself.
import { afterEach, expect, test } from "bun:test";
import * as libc from "../../src/libc/libc.ts";
import * as net from "../../src/libc/net.ts";
import { NetlinkListener } from "../../src/netlink/listener.ts";
import { encodeGenlMessage, parseGenl, splitMessages, u32Attribute } from "../../src/netlink/message.ts";
import { ControlSocket, NetlinkRequestError, openEventSocket } from "../../src/netlink/socket.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("ControlSocket.getFamily() resolves nlctrl and its notify group from the kernel", () => {
  const control = ControlSocket.open();
  cleanups.push(() => control.close());
  const family = control.getFamily("nlctrl");
  expect(family.id).toBe(0x10);
  expect(family.groups.has("notify")).toBe(true);
});

test("ControlSocket.getFamily() answers ENOENT for a family no module registered", () => {
  const control = ControlSocket.open();
  cleanups.push(() => control.close());
  try {
    control.getFamily("NO-SUCH-FAMILY");
    throw new Error("resolved a family that does not exist");
  } catch (error) {
    expect(error).toBeInstanceOf(NetlinkRequestError);
    expect((error as NetlinkRequestError).errno).toBe(2);
  }
});

test("openEventSocket() subscribes with a large receive buffer and NETLINK_NO_ENOBUFS", () => {
  const control = ControlSocket.open();
  cleanups.push(() => control.close());
  const events = openEventSocket(control.getFamily("nlctrl").groups.get("notify")!);
  cleanups.push(() => libc.close(events.fd));
  expect(events.noEnobufs).toBe(true);
  // Root may force it past rmem_max; without CAP_NET_ADMIN rmem_max caps it.
  expect(events.receiveBufferBytes).toBeGreaterThan(200_000);
});

test("NetlinkListener hands each datagram to the main thread from its worker", async () => {
  // A socket bound to a port id of our choosing stands in for the multicast subscription.
  const portId = 0x7e500000 + (process.pid & 0xffff);
  const receiver = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  net.bind(receiver, net.netlinkAddress(portId));
  const sender = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  net.bind(sender, net.netlinkAddress());
  cleanups.push(() => libc.close(receiver), () => libc.close(sender));
  const received: Uint8Array[] = [];
  let arrived: () => void = () => {};
  const bothArrived = new Promise<void>((resolve) => (arrived = resolve));
  const listener = new NetlinkListener({
    socketFd: receiver,
    onDatagram: (datagram) => {
      received.push(datagram);
      if (received.length === 2) arrived();
    },
    onOverflow: () => {},
    onFailed: (reason) => {
      throw new Error(reason);
    },
  });
  cleanups.push(() => listener.stop());
  for (const sequence of [1, 2]) {
    const message = encodeGenlMessage({ familyId: 0x1c, command: 1, version: 2, flags: 0, sequence, attributes: [u32Attribute(8, sequence * 10)] });
    net.sendto(sender, message, net.netlinkAddress(portId), net.SOCKADDR_NL_BYTES);
  }
  await bothArrived;
  const ids = received.map((datagram) => parseGenl(splitMessages(datagram)[0]!.payload).attributes.get(8)![0]);
  expect(ids).toEqual([10, 20]);
});
