// The fuzzer's reference model: from nothing but the CDB and Data-Out of an accepted (GOOD)
// command, what it must have done to the disks, applied to shadow copies that the test compares
// with the real disks.
import { BLOCK_BYTES, type FuzzCommand, type FuzzDisk } from "./fuzz-generator.ts";

const be = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Applies what an accepted command did to the shadow disks: decoded here independently of the
 * implementation, from the CDB and Data-Out alone. Commands without data effect do nothing.
 */
export function applyAccepted(command: FuzzCommand, disks: FuzzDisk[]): void {
  const cdb = command.cdb;
  const view = be(cdb);
  const shadow = disks[0]!.shadow;
  const out = command.dataOut ?? new Uint8Array(0);
  const put = (lba: number, bytes: Uint8Array) => shadow.set(bytes, lba * BLOCK_BYTES);
  switch (cdb[0]) {
    case 0x0a: {
      const blocks = cdb[4] === 0 ? 256 : cdb[4]!;
      return put(((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!, out.subarray(0, blocks * BLOCK_BYTES));
    }
    case 0x2a:
    case 0x2e:
      return put(view.getUint32(2), out.subarray(0, view.getUint16(7) * BLOCK_BYTES));
    case 0xaa:
      return put(view.getUint32(2), out.subarray(0, view.getUint32(6) * BLOCK_BYTES));
    case 0x8a:
    case 0x8e:
      return put(Number(view.getBigUint64(2)), out.subarray(0, view.getUint32(10) * BLOCK_BYTES));
    case 0x41:
    case 0x93: {
      const sixteen = cdb[0] === 0x93;
      const lba = sixteen ? Number(view.getBigUint64(2)) : view.getUint32(2);
      const blocks = sixteen ? view.getUint32(10) : view.getUint16(7);
      const block = sixteen && (cdb[1]! & 0x01) !== 0 ? new Uint8Array(BLOCK_BYTES) : out.subarray(0, BLOCK_BYTES);
      for (let index = 0; index < blocks; index += 1) put(lba + index, block);
      return;
    }
    case 0x42: {
      const listBytes = view.getUint16(7);
      if (listBytes === 0) return;
      const list = be(out);
      const count = Math.floor(Math.min(list.getUint16(2), listBytes - 8) / 16);
      for (let index = 0; index < count; index += 1) {
        const lba = Number(list.getBigUint64(8 + 16 * index));
        const blocks = list.getUint32(16 + 16 * index);
        shadow.fill(0, lba * BLOCK_BYTES, (lba + blocks) * BLOCK_BYTES);
      }
      return;
    }
    case 0x89: {
      const blocks = cdb[13]!;
      return put(Number(view.getBigUint64(2)), out.subarray(blocks * BLOCK_BYTES, 2 * blocks * BLOCK_BYTES));
    }
    case 0x83: {
      if (view.getUint32(10) === 0) return;
      const list = be(out);
      const targetBytes = list.getUint16(2);
      const segmentBytes = list.getUint32(8);
      const diskOf = (index: number) => {
        const at = 16 + 32 * index + 8;
        const key = [...out.subarray(at, at + 16)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
        return disks.find((disk) => disk.naaKey === key)!;
      };
      for (let at = 16 + targetBytes; at < 16 + targetBytes + segmentBytes; at += 28) {
        const source = diskOf(list.getUint16(at + 4));
        const destination = diskOf(list.getUint16(at + 6));
        const blocks = list.getUint16(at + 10);
        const sourceStart = Number(list.getBigUint64(at + 12)) * BLOCK_BYTES;
        const destinationStart = Number(list.getBigUint64(at + 20)) * BLOCK_BYTES;
        // A copy through a buffer of the whole segment (memmove), as SPC-4 describes it.
        destination.shadow.set(source.shadow.slice(sourceStart, sourceStart + blocks * BLOCK_BYTES), destinationStart);
      }
      return;
    }
    default:
      return;
  }
}

/** True for a Data-In READ that returned data which must equal the shadow. */
export function readRange(cdb: Uint8Array): { lba: number; blocks: number } | undefined {
  const view = be(cdb);
  switch (cdb[0]) {
    case 0x08:
      return { lba: ((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!, blocks: cdb[4] === 0 ? 256 : cdb[4]! };
    case 0x28:
      return { lba: view.getUint32(2), blocks: view.getUint16(7) };
    case 0xa8:
      return { lba: view.getUint32(2), blocks: view.getUint32(6) };
    case 0x88:
      return { lba: Number(view.getBigUint64(2)), blocks: view.getUint32(10) };
    default:
      return undefined;
  }
}
