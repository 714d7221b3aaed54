// Reading ring entries: what a CMD entry asks (CDB and iovecs copied out into a command slot)
// and which commands a TMR entry names. Nothing read here is trusted: every offset and length is
// checked against the ring and the map before it is used, and a bad entry comes back as the
// reason it is unusable (the engine fails that one command, or stops a ring it cannot walk).
import { CDB_LENGTH_MAX, scsiCommandSize, type ScsiCommand } from "./command.ts";
import * as uapi from "./uapi.ts";

/** CDB bytes copied for every command (the longest fixed-length CDB); variable-length ones get the rest. */
const CDB_FIRST_BYTES = 16;
/** Offsets above 2^53 cannot be numbers; the kernel never writes them, a corrupt ring might. */
const HIGH_WORD_MAX = 0x1f_ffff;

/** Where things are in the mapping (from the mailbox), and how big it is. */
export interface RingLayout {
  readonly cmdrOffset: number;
  readonly cmdrSizeBytes: number;
  readonly dataAreaOffset: number;
  readonly mapBytes: number;
}

/** Reads a u64 map offset or length; -1 when it is too large to be one. */
export function readOffset(view: DataView, at: number): number {
  const low = view.getUint32(at, true);
  const high = view.getUint32(at + 4, true);
  return high > HIGH_WORD_MAX ? -1 : high * 0x1_0000_0000 + low;
}

/**
 * Whether an entry of `lengthBytes` at ring position `position` can be walked over: at least a
 * header (a whole entry for CMD), no more than was posted, and not past the ring's end.
 */
export function entryLengthIsSane(layout: RingLayout, position: number, lengthBytes: number, op: number, postedBytes: number): boolean {
  const minimum = op === uapi.TCMU_OP_CMD ? uapi.TCMU_CMD_ENTRY_SIZE : uapi.TCMU_CMD_ENTRY_HDR_SIZE;
  return lengthBytes >= minimum && lengthBytes <= postedBytes && position + lengthBytes <= layout.cmdrSizeBytes;
}

/** Data bytes (Data-Out + bidi Data-In) a CMD entry's iovecs add up to; 0 when they do not fit it. */
export function entryDataBytes(view: DataView, entryOffset: number, lengthBytes: number): number {
  const iovTotal = view.getUint32(entryOffset + uapi.REQ_IOV_CNT_OFFSET, true) + view.getUint32(entryOffset + uapi.REQ_IOV_BIDI_CNT_OFFSET, true);
  if (uapi.REQ_IOV_OFFSET + uapi.IOVEC_SIZE * iovTotal > lengthBytes) return 0;
  let bytes = 0;
  for (let index = 0; index < iovTotal; index += 1) bytes += readOffset(view, entryOffset + uapi.REQ_IOV_OFFSET + uapi.IOVEC_SIZE * index + 8);
  return bytes;
}

/** Copies CDB and iovecs out of the CMD entry into `command`; returns why the entry is unusable, if it is. */
export function readRequest(layout: RingLayout, view: DataView, memory: Uint8Array, entryOffset: number, lengthBytes: number, command: ScsiCommand): string | undefined {
  const iovCount = view.getUint32(entryOffset + uapi.REQ_IOV_CNT_OFFSET, true);
  const iovBidiCount = view.getUint32(entryOffset + uapi.REQ_IOV_BIDI_CNT_OFFSET, true);
  const iovDifCount = view.getUint32(entryOffset + uapi.REQ_IOV_DIF_CNT_OFFSET, true);
  const iovTotal = iovCount + iovBidiCount + iovDifCount;
  if (uapi.REQ_IOV_OFFSET + uapi.IOVEC_SIZE * iovTotal > lengthBytes) {
    return `${iovTotal} iovecs do not fit a ${lengthBytes}-byte entry`;
  }
  const cdbOffset = readOffset(view, entryOffset + uapi.REQ_CDB_OFF_OFFSET);
  // The kernel puts the CDB inside the entry; anything outside the ring is refused.
  const ringBytesLeft = layout.dataAreaOffset - cdbOffset;
  if (cdbOffset < layout.cmdrOffset || ringBytesLeft < 6) return `cdb_off ${cdbOffset} lies outside the command ring`;
  // Byte by byte: a subarray per command would be an allocation on the hot path.
  const cdb = command.cdb;
  const firstBytes = Math.min(CDB_FIRST_BYTES, ringBytesLeft);
  for (let index = 0; index < CDB_FIRST_BYTES; index += 1) cdb[index] = index < firstBytes ? memory[cdbOffset + index]! : 0;
  const cdbLength = scsiCommandSize(cdb);
  if (cdbLength > CDB_LENGTH_MAX || cdbLength > ringBytesLeft) {
    return `a ${cdbLength}-byte CDB at ${cdbOffset} does not fit the command ring`;
  }
  if (cdbLength > CDB_FIRST_BYTES) cdb.set(memory.subarray(cdbOffset, cdbOffset + cdbLength));
  command.cdbLength = cdbLength;

  for (let index = 0; index < iovCount + iovBidiCount; index += 1) {
    const iovecOffset = entryOffset + uapi.REQ_IOV_OFFSET + uapi.IOVEC_SIZE * index;
    const base = readOffset(view, iovecOffset);
    const length = readOffset(view, iovecOffset + 8);
    if (base < layout.dataAreaOffset || length < 0 || base + length > layout.mapBytes) {
      return `iovec ${index} (offset ${base}, ${length} bytes) lies outside the data area`;
    }
    (index < iovCount ? command.data : command.bidiData).push(base, length);
  }
  return undefined;
}

/** The cmd_ids a TMR entry names, passed one by one to `each`; false when the entry is malformed. */
export function forEachTmrCommand(view: DataView, entryOffset: number, lengthBytes: number, each: (cmdId: number) => void): boolean {
  const commandCount = view.getUint32(entryOffset + uapi.TMR_CMD_CNT_OFFSET, true);
  if (uapi.TMR_CMD_IDS_OFFSET + 2 * commandCount > lengthBytes) return false;
  for (let index = 0; index < commandCount; index += 1) each(view.getUint16(entryOffset + uapi.TMR_CMD_IDS_OFFSET + 2 * index, true));
  return true;
}
