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

/** A receiver bound to a port id of our choosing stands in for the multicast subscription. */
function socketPair(): { receiver: number; sender: number; portId: number } {
  const portId = 0x7e500000 + (process.pid & 0xffff);
  const receiver = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  net.bind(receiver, net.netlinkAddress(portId));
  const sender = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  net.bind(sender, net.netlinkAddress());
  cleanups.push(() => libc.close(receiver), () => libc.close(sender));
  return { receiver, sender, portId };
}

/** A message the kernel ignores if it gets it (no NLM_F_REQUEST), carrying `value`. */
function message(value: number): Uint8Array {
  return encodeGenlMessage({ familyId: 0x1c, command: 1, version: 2, flags: 0, sequence: value, attributes: [u32Attribute(8, value)] });
}

function valueOf(datagram: Uint8Array): number {
  return parseGenl(splitMessages(datagram)[0]!.payload).attributes.get(8)![0]!;
}

function failOnFailure(reason: string): never {
  throw new Error(reason);
}

test("NetlinkListener hands each datagram to the main thread when SIGIO says one is queued, the ones queued before it started first", async () => {
  const { receiver, sender, portId } = socketPair();
  net.sendto(sender, message(10), net.netlinkAddress(portId), net.SOCKADDR_NL_BYTES);
  const received: number[] = [];
  let arrived: () => void = () => {};
  const allArrived = new Promise<void>((resolve) => (arrived = resolve));
  const listener = new NetlinkListener({
    socketFd: receiver,
    onDatagram: (datagram) => {
      received.push(valueOf(datagram));
      if (received.length === 3) arrived();
    },
    onOverflow: () => {},
    onFailed: failOnFailure,
  });
  cleanups.push(() => listener.stop());
  expect(received).toEqual([10]);
  // Each send is answered on its own turn of the event loop: the signal, not a loop, reads it.
  for (const value of [20, 30]) {
    net.sendto(sender, message(value), net.netlinkAddress(portId), net.SOCKADDR_NL_BYTES);
    await Bun.sleep(20);
  }
  await allArrived;
  expect(received).toEqual([10, 20, 30]);
});

test("a stopped NetlinkListener hands nothing over, and datagrams sent then do not end the process", async () => {
  const { receiver, sender, portId } = socketPair();
  const received: number[] = [];
  const listener = new NetlinkListener({ socketFd: receiver, onDatagram: (datagram) => received.push(valueOf(datagram)), onOverflow: () => {}, onFailed: failOnFailure });
  await listener.stop();
  net.sendto(sender, message(40), net.netlinkAddress(portId), net.SOCKADDR_NL_BYTES);
  await Bun.sleep(50);
  expect(received).toEqual([]);
  // The datagram waits in the socket for whoever reads it next.
  const buffer = new Uint8Array(4096);
  const length = net.recvRaw(receiver, buffer, net.MSG_DONTWAIT);
  expect(valueOf(buffer.subarray(0, length))).toBe(40);
});

test("NetlinkListener reports the events a full socket dropped (NETLINK_NO_ENOBUFS makes them silent)", async () => {
  // Multicast, as the kernel's events come: a unicast sender blocks on a full socket instead.
  const group = 30;
  const receiver = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  const sender = net.socket(net.AF_NETLINK, net.SOCK_RAW, net.NETLINK_GENERIC);
  cleanups.push(() => libc.close(receiver), () => libc.close(sender));
  net.bind(receiver, net.netlinkAddress(0, 1 << (group - 1)));
  net.setsockoptInt(receiver, net.SOL_SOCKET, net.SO_RCVBUF, 1);
  net.setsockoptInt(receiver, net.SOL_NETLINK, net.NETLINK_NO_ENOBUFS, 1);
  net.bind(sender, net.netlinkAddress());
  let received = 0;
  const overflows: number[] = [];
  const listener = new NetlinkListener({ socketFd: receiver, onDatagram: () => (received += 1), onOverflow: (drops) => overflows.push(drops), onFailed: failOnFailure });
  cleanups.push(() => listener.stop());
  // Sent in one turn of the event loop, so nothing is read until all are sent.
  const sent = 200;
  for (let value = 1; value <= sent; value += 1) net.sendto(sender, message(value), net.netlinkAddress(0, 1 << (group - 1)), net.SOCKADDR_NL_BYTES);
  await Bun.sleep(50);
  expect(received).toBeGreaterThan(0);
  expect(received).toBeLessThan(sent);
  expect(overflows).toEqual([sent - received]);
});
