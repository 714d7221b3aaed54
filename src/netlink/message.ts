// Netlink and generic-netlink framing (include/uapi/linux/netlink.h, genetlink.h): a 16-byte
// nlmsghdr, a 4-byte genlmsghdr, then attributes {u16 len, u16 type, payload} each padded to 4.
// Everything is host order (little-endian on x86_64). Parsing checks every length against the
// buffer and throws NetlinkFormatError: a datagram the kernel sent us that does not parse is a
// bug somewhere, and the caller logs it rather than acting on half a message.

export const NLMSG_HDR_BYTES = 16;
export const GENL_HDR_BYTES = 4;
export const NLA_HDR_BYTES = 4;
export const NLMSG_ALIGN_BYTES = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;

/** nla_type's top bits are flags (nested, network byte order), not part of the type. */
const NLA_TYPE_MASK = 0x3fff;

export class NetlinkFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetlinkFormatError";
  }
}

export function align4(lengthBytes: number): number {
  return (lengthBytes + NLMSG_ALIGN_BYTES - 1) & ~(NLMSG_ALIGN_BYTES - 1);
}

export interface Attribute {
  type: number;
  payload: Uint8Array;
}

export function u8Attribute(type: number, value: number): Attribute {
  return { type, payload: Uint8Array.of(value) };
}

export function u32Attribute(type: number, value: number): Attribute {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, value >>> 0, true);
  return { type, payload };
}

export function s32Attribute(type: number, value: number): Attribute {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setInt32(0, value, true);
  return { type, payload };
}

export function u64Attribute(type: number, value: bigint): Attribute {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setBigUint64(0, value, true);
  return { type, payload };
}

/** NLA_STRING / NLA_NUL_STRING: the kernel's nla_put_string includes the terminating NUL. */
export function stringAttribute(type: number, value: string): Attribute {
  const text = new TextEncoder().encode(value);
  const payload = new Uint8Array(text.length + 1);
  payload.set(text);
  return { type, payload };
}

export interface GenlRequest {
  familyId: number;
  command: number;
  version: number;
  flags: number;
  sequence: number;
  attributes: readonly Attribute[];
}

/** One generic netlink message: nlmsghdr (pid 0: the kernel fills ours), genlmsghdr, attributes. */
export function encodeGenlMessage(request: GenlRequest): Uint8Array {
  let lengthBytes = NLMSG_HDR_BYTES + GENL_HDR_BYTES;
  for (const attribute of request.attributes) lengthBytes += align4(NLA_HDR_BYTES + attribute.payload.length);
  const message = new Uint8Array(lengthBytes);
  const view = new DataView(message.buffer);
  view.setUint32(0, lengthBytes, true);
  view.setUint16(4, request.familyId, true);
  view.setUint16(6, request.flags, true);
  view.setUint32(8, request.sequence >>> 0, true);
  view.setUint32(12, 0, true);
  view.setUint8(NLMSG_HDR_BYTES, request.command);
  view.setUint8(NLMSG_HDR_BYTES + 1, request.version);
  let offset = NLMSG_HDR_BYTES + GENL_HDR_BYTES;
  for (const attribute of request.attributes) {
    view.setUint16(offset, NLA_HDR_BYTES + attribute.payload.length, true);
    view.setUint16(offset + 2, attribute.type, true);
    message.set(attribute.payload, offset + NLA_HDR_BYTES);
    offset += align4(NLA_HDR_BYTES + attribute.payload.length);
  }
  return message;
}

export interface NetlinkMessage {
  type: number;
  flags: number;
  sequence: number;
  portId: number;
  /** Everything after the nlmsghdr. */
  payload: Uint8Array;
}

/** Splits one datagram into its messages (a datagram may carry several). */
export function splitMessages(datagram: Uint8Array): NetlinkMessage[] {
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (datagram.byteLength - offset >= NLMSG_HDR_BYTES) {
    const lengthBytes = view.getUint32(offset, true);
    if (lengthBytes < NLMSG_HDR_BYTES || offset + lengthBytes > datagram.byteLength) {
      throw new NetlinkFormatError(`netlink message at ${offset} claims ${lengthBytes} bytes of a ${datagram.byteLength}-byte datagram`);
    }
    messages.push({
      type: view.getUint16(offset + 4, true),
      flags: view.getUint16(offset + 6, true),
      sequence: view.getUint32(offset + 8, true),
      portId: view.getUint32(offset + 12, true),
      payload: datagram.subarray(offset + NLMSG_HDR_BYTES, offset + lengthBytes),
    });
    offset += align4(lengthBytes);
  }
  return messages;
}

export interface GenlMessage {
  command: number;
  version: number;
  attributes: Map<number, Uint8Array>;
}

export function parseGenl(payload: Uint8Array): GenlMessage {
  if (payload.byteLength < GENL_HDR_BYTES) throw new NetlinkFormatError(`generic netlink payload of ${payload.byteLength} bytes has no header`);
  return { command: payload[0]!, version: payload[1]!, attributes: parseAttributes(payload.subarray(GENL_HDR_BYTES)) };
}

/** Attributes by type; a repeated type keeps the last (the kernel sends each once). */
export function parseAttributes(bytes: Uint8Array): Map<number, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const attributes = new Map<number, Uint8Array>();
  let offset = 0;
  while (bytes.byteLength - offset >= NLA_HDR_BYTES) {
    const lengthBytes = view.getUint16(offset, true);
    if (lengthBytes < NLA_HDR_BYTES || offset + lengthBytes > bytes.byteLength) {
      throw new NetlinkFormatError(`attribute at ${offset} claims ${lengthBytes} bytes of ${bytes.byteLength}`);
    }
    attributes.set(view.getUint16(offset + 2, true) & NLA_TYPE_MASK, bytes.subarray(offset + NLA_HDR_BYTES, offset + lengthBytes));
    offset += align4(lengthBytes);
  }
  return attributes;
}

/** Nested attributes that form an array (CTRL_ATTR_MCAST_GROUPS): each element's payload, in order. */
export function parseNestedList(bytes: Uint8Array): Uint8Array[] {
  return [...parseAttributes(bytes).values()];
}

function fixedWidth(payload: Uint8Array | undefined, widthBytes: number, what: string): DataView | undefined {
  if (payload === undefined) return undefined;
  if (payload.byteLength < widthBytes) throw new NetlinkFormatError(`${what} attribute has ${payload.byteLength} bytes, expected ${widthBytes}`);
  return new DataView(payload.buffer, payload.byteOffset, widthBytes);
}

export function readU8(payload: Uint8Array | undefined): number | undefined {
  return fixedWidth(payload, 1, "u8")?.getUint8(0);
}

export function readU16(payload: Uint8Array | undefined): number | undefined {
  return fixedWidth(payload, 2, "u16")?.getUint16(0, true);
}

export function readU32(payload: Uint8Array | undefined): number | undefined {
  return fixedWidth(payload, 4, "u32")?.getUint32(0, true);
}

export function readS32(payload: Uint8Array | undefined): number | undefined {
  return fixedWidth(payload, 4, "s32")?.getInt32(0, true);
}

/** A u64 as a number; sizes above 2^53 cannot be one and are refused. */
export function readU64(payload: Uint8Array | undefined): number | undefined {
  const value = fixedWidth(payload, 8, "u64")?.getBigUint64(0, true);
  if (value === undefined) return undefined;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new NetlinkFormatError(`u64 attribute ${value} does not fit 2^53`);
  return Number(value);
}

/** A string attribute without its NUL terminator (and anything after it). */
export function readString(payload: Uint8Array | undefined): string | undefined {
  if (payload === undefined) return undefined;
  const end = payload.indexOf(0);
  return new TextDecoder().decode(end < 0 ? payload : payload.subarray(0, end));
}

/** NLMSG_ERROR: a negative errno, or 0 for an acknowledgement. */
export function readErrorCode(message: NetlinkMessage): number {
  if (message.payload.byteLength < 4) throw new NetlinkFormatError("NLMSG_ERROR without an error code");
  return new DataView(message.payload.buffer, message.payload.byteOffset, 4).getInt32(0, true);
}
