// The fuzzer's generator: CDBs for every command served — valid ones with random fields near
// the edges, mutated ones, and random bytes — with random parameter lists and buffer sizes.
import { scsiCommandSize } from "../../src/ring/command.ts";
import { ALL_COMMANDS } from "../../src/scsi/commands.ts";
import type { Random } from "./fuzz-random.ts";

export const BLOCK_BYTES = 512;

/** One generated command: CDB, Data-Out (a view into a reused buffer) or a Data-In size. */
export interface FuzzCommand {
  cdb: Uint8Array;
  dataOut: Uint8Array | undefined;
  dataInBytes: number;
}

export interface FuzzDisk {
  shadow: Uint8Array;
  naa: Uint8Array;
  naaKey: string;
}

export interface FuzzState {
  capacityBlocks: number;
  maxTransferBlocks: number;
  writeCacheEnabled: boolean;
  descriptorSense: boolean;
}

/** Opcodes whose Data-Out is a parameter list or blocks (everything else is Data-In or none). */
const DATA_OUT_OPCODES = new Set([0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0x8e, 0x2f, 0x8f, 0x41, 0x93, 0x42, 0x89, 0x15, 0x55, 0x83]);

/** Opcodes that always answer GOOD with Data-In (reads, reports, sense, inquiry). */
export const DATA_IN_OPCODES: ReadonlySet<number> = new Set([0x03, 0x12, 0x1a, 0x5a, 0x25, 0x9e, 0xa3, 0x84, 0x08, 0x28, 0xa8, 0x88]);

const be = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
/** A command that sends `dataOut`. */
const sending = (cdb: Uint8Array, dataOut: Uint8Array): FuzzCommand => ({ cdb, dataOut, dataInBytes: 0 });
/** A command with a Data-In buffer of `dataInBytes` (or no data at all). */
const receiving = (cdb: Uint8Array, dataInBytes = 0): FuzzCommand => ({ cdb, dataOut: undefined, dataInBytes });

export class FuzzGenerator {
  readonly random: Random;
  readonly #out = new Uint8Array(128 * 1024);
  readonly #disks: FuzzDisk[];

  constructor(random: Random, disks: FuzzDisk[]) {
    this.random = random;
    this.#disks = disks;
  }

  next(state: FuzzState): FuzzCommand {
    const random = this.random;
    const roll = random.u32() / 0x1_0000_0000;
    let command: FuzzCommand;
    if (roll < 0.08) command = this.#randomBytes(random.below(256));
    else if (roll < 0.16) command = this.#randomBytes(random.pick(ALL_COMMANDS).opcode);
    else command = this.#template(state);
    if (roll >= 0.16 && random.chance(0.25)) this.#mutate(command);
    return this.#directed(command);
  }

  /**
   * The kernel sizes and directs the buffer from the CDB: a mutated opcode that now moves data
   * the other way gets a buffer of the same size in its own direction.
   */
  #directed(command: FuzzCommand): FuzzCommand {
    const dataOut = DATA_OUT_OPCODES.has(command.cdb[0]!);
    if (dataOut && command.dataOut === undefined) return { ...command, dataOut: this.#randomOut(command.dataInBytes), dataInBytes: 0 };
    if (!dataOut && command.dataOut !== undefined) return { ...command, dataOut: undefined, dataInBytes: command.dataOut.length };
    return command;
  }

  #randomBytes(opcode: number): FuzzCommand {
    const random = this.random;
    // 7Fh is variable length: byte 7 says how much follows the first 8 bytes.
    const additional = 8 * random.below(4);
    const cdb = new Uint8Array(scsiCommandSize(Uint8Array.of(opcode, 0, 0, 0, 0, 0, 0, additional)));
    random.fill(cdb, 0, cdb.length);
    cdb[0] = opcode;
    if (opcode === 0x7f) cdb[7] = additional;
    if (random.chance(0.5)) cdb[cdb.length - 1] = 0;
    if (DATA_OUT_OPCODES.has(opcode)) return { cdb, dataOut: this.#randomOut(random.below(4096)), dataInBytes: 0 };
    return { cdb, dataOut: undefined, dataInBytes: random.below(4096) };
  }

  #randomOut(wantedBytes: number): Uint8Array {
    const length = Math.min(wantedBytes, this.#out.length);
    this.random.fill(this.#out, 0, length);
    return this.#out.subarray(0, length);
  }

  /** Flips a few bits of the CDB (rarely the opcode) and sometimes of Data-Out, or cuts it. */
  #mutate(command: FuzzCommand): void {
    const random = this.random;
    const flips = 1 + random.below(3);
    for (let index = 0; index < flips; index += 1) {
      const at = random.chance(0.05) ? 0 : 1 + random.below(command.cdb.length - 1);
      command.cdb[at] = command.cdb[at]! ^ (1 << random.below(8));
    }
    // A new opcode may belong to a group with another CDB length: cut or zero-extend to it.
    if (command.cdb[0] === 0x7f && command.cdb.length >= 8) command.cdb[7] = command.cdb.length - 8;
    const length = command.cdb.length < 8 && command.cdb[0] === 0x7f ? 8 : scsiCommandSize(command.cdb);
    if (length !== command.cdb.length) {
      const resized = new Uint8Array(length);
      resized.set(command.cdb.subarray(0, length));
      command.cdb = resized;
    }
    if (command.dataOut !== undefined && command.dataOut.length > 0 && random.chance(0.3)) {
      if (random.chance(0.5)) command.dataOut = command.dataOut.subarray(0, random.below(command.dataOut.length));
      else {
        const at = random.below(command.dataOut.length);
        command.dataOut[at] = command.dataOut[at]! ^ (1 << random.below(8));
      }
    }
  }

  /** An LBA biased towards the ends of the disk, sometimes just past it. */
  #lba(state: FuzzState, blocks: number): number {
    const random = this.random;
    const capacity = state.capacityBlocks;
    const roll = random.below(10);
    if (roll === 0) return 0;
    if (roll === 1) return Math.max(0, capacity - blocks);
    if (roll === 2) return capacity - blocks + 1 + random.below(3);
    return random.below(capacity);
  }

  #blocks(state: FuzzState): number {
    const random = this.random;
    if (random.chance(0.05)) return state.maxTransferBlocks + random.below(3);
    return random.chance(0.7) ? random.below(9) : random.below(state.maxTransferBlocks + 1);
  }

  #template(state: FuzzState): FuzzCommand {
    const random = this.random;
    const kind = random.below(24);
    const blocks = this.#blocks(state);
    const lba = this.#lba(state, blocks);
    const disk = this.#disks[0]!;
    switch (kind) {
      case 0:
      case 1:
      case 2: {
        const form = random.pick([6, 10, 12, 16]);
        return receiving(rwCdb(form, true, lba, blocks, random.chance(0.1) ? 0x08 : 0), this.#dataInFor(blocks));
      }
      case 3:
      case 4:
      case 5: {
        const form = random.pick([6, 10, 12, 16]);
        const count = form === 6 && blocks === 0 ? 256 : blocks;
        return sending(rwCdb(form, false, lba, blocks, random.chance(0.2) ? 0x08 : 0), this.#randomOut(this.#dataOutFor(count)));
      }
      case 6: {
        const byteCheck = random.pick([0, 1, 3, 2]);
        const cdb = lbaCdb(random.chance(0.5) ? 0x2f : 0x8f, lba, blocks, byteCheck << 1);
        const outBlocks = byteCheck === 0 ? 0 : byteCheck === 3 ? 1 : blocks;
        return sending(cdb, this.#shadowOrRandom(disk, lba, outBlocks));
      }
      case 7: {
        const cdb = lbaCdb(random.chance(0.5) ? 0x2e : 0x8e, lba, blocks, random.below(2) << 1);
        return sending(cdb, this.#randomOut(this.#dataOutFor(blocks)));
      }
      case 8:
        return receiving(lbaCdb(random.pick([0x35, 0x91, 0x34, 0x90]), lba, blocks, random.chance(0.3) ? 0x02 : 0));
      case 9: {
        const sixteen = random.chance(0.5);
        const flags = random.pick([0, 0x08, sixteen ? 0x01 : 0, sixteen ? 0x09 : 0x08]);
        const count = Math.max(1, blocks * (random.chance(0.2) ? 64 : 1));
        const cdb = lbaCdb(sixteen ? 0x93 : 0x41, this.#lba(state, count), count, flags);
        const pattern = this.#randomOut(BLOCK_BYTES);
        if (random.chance(0.5)) pattern.fill(0);
        return { cdb, dataOut: (flags & 0x01) !== 0 ? pattern.subarray(0, 0) : pattern, dataInBytes: 0 };
      }
      case 10:
        return this.#unmap(state);
      case 11:
        return receiving(getLbaStatusCdb(random.chance(0.9) ? lba : 2 ** 40, random.below(600)), random.below(1024));
      case 12:
      case 13: {
        const count = random.below(4);
        const cdb = new Uint8Array(16);
        cdb[0] = 0x89;
        cdb[1] = random.chance(0.2) ? 0x08 : 0;
        be(cdb).setBigUint64(2, BigInt(this.#lba(state, count)));
        cdb[13] = count;
        const verify = this.#shadowOrRandom(disk, Math.min(lba, state.capacityBlocks - count), count);
        const out = new Uint8Array(2 * count * BLOCK_BYTES);
        out.set(verify.subarray(0, Math.min(verify.length, out.length)));
        this.random.fill(out, count * BLOCK_BYTES, count * BLOCK_BYTES);
        return { cdb, dataOut: out, dataInBytes: 0 };
      }
      case 14:
        return this.#modeSense();
      case 15:
        return this.#modeSelect(state);
      case 16:
        const page = random.pick([0, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2, 0x01, 0xb3]);
        return receiving(Uint8Array.of(0x12, random.chance(0.7) ? 1 : 0, page, 0, random.below(300), 0), random.below(512));
      case 17:
        return { cdb: Uint8Array.of(0x03, random.below(2), 0, 0, random.below(256), 0), dataOut: undefined, dataInBytes: random.below(256) };
      case 18: {
        const start = random.chance(0.85) ? 1 : 0;
        const which = random.below(3);
        if (which === 0) return receiving(Uint8Array.of(0x1b, random.below(2), 0, 0, start | (random.chance(0.2) ? 0x04 : 0), 0));
        if (which === 1) return receiving(Uint8Array.of(0x1e, 0, 0, 0, random.below(4), 0));
        return receiving(new Uint8Array(6));
      }
      case 19: {
        const cdb = new Uint8Array(12);
        cdb[0] = 0xa3;
        cdb[1] = random.chance(0.8) ? 0x0c : 0x0d;
        cdb[2] = (random.chance(0.3) ? 0x80 : 0) | random.below(5);
        const row = random.pick(ALL_COMMANDS);
        cdb[3] = row.opcode;
        be(cdb).setUint16(4, row.serviceAction ?? 0);
        be(cdb).setUint32(6, random.below(2048));
        return { cdb, dataOut: undefined, dataInBytes: random.below(2048) };
      }
      case 20:
      case 21:
        return this.#extendedCopy(state);
      case 22: {
        const cdb = new Uint8Array(16);
        cdb[0] = 0x84;
        cdb[1] = 0x03;
        be(cdb).setUint32(10, random.below(100));
        return { cdb, dataOut: undefined, dataInBytes: random.below(100) };
      }
      default: {
        const cdb = random.chance(0.5) ? new Uint8Array(10) : new Uint8Array(16);
        if (cdb.length === 10) {
          cdb[0] = 0x25;
          cdb[8] = random.below(2);
        } else {
          cdb[0] = 0x9e;
          cdb[1] = 0x10;
          be(cdb).setUint32(10, random.below(40));
        }
        return { cdb, dataOut: undefined, dataInBytes: random.below(40) };
      }
    }
  }

  #dataInFor(blocks: number): number {
    const exact = blocks * BLOCK_BYTES;
    return this.random.chance(0.9) ? exact : this.random.below(exact + BLOCK_BYTES);
  }

  #dataOutFor(blocks: number): number {
    const exact = Math.min(blocks * BLOCK_BYTES, this.#out.length);
    return this.random.chance(0.95) ? exact : this.random.below(exact + BLOCK_BYTES);
  }

  /** What the disk holds (so compares can match), or random bytes. */
  #shadowOrRandom(disk: FuzzDisk, lba: number, blocks: number): Uint8Array {
    const length = Math.min(blocks * BLOCK_BYTES, this.#out.length);
    const start = lba * BLOCK_BYTES;
    if (this.random.chance(0.7) && start >= 0 && start + length <= disk.shadow.length) {
      this.#out.set(disk.shadow.subarray(start, start + length));
      return this.#out.subarray(0, length);
    }
    return this.#randomOut(length);
  }

  #unmap(state: FuzzState): FuzzCommand {
    const random = this.random;
    const count = random.below(5);
    const list = this.#out.subarray(0, 8 + 16 * count);
    list.fill(0);
    be(list).setUint16(0, list.length - 2);
    be(list).setUint16(2, 16 * count);
    for (let index = 0; index < count; index += 1) {
      const blocks = random.below(64);
      be(list).setBigUint64(8 + 16 * index, BigInt(this.#lba(state, blocks)));
      be(list).setUint32(16 + 16 * index, blocks);
    }
    const cdb = new Uint8Array(10);
    cdb[0] = 0x42;
    be(cdb).setUint16(7, list.length);
    return { cdb, dataOut: list, dataInBytes: 0 };
  }

  #modeSense(): FuzzCommand {
    const random = this.random;
    const tenByte = random.chance(0.5);
    const page = random.pick([0x3f, 0x08, 0x0a, 0x01, 0x1c, 0x03]);
    const control = (random.below(4) << 6) | page;
    const allocation = random.below(256);
    const flags = random.below(2) * 0x08 | (tenByte ? random.below(2) * 0x10 : 0);
    const subpage = random.chance(0.9) ? 0 : 0xff;
    const cdb = tenByte
      ? Uint8Array.of(0x5a, flags, control, subpage, 0, 0, 0, 0, allocation, 0)
      : Uint8Array.of(0x1a, flags, control, subpage, allocation, 0);
    return receiving(cdb, random.below(256));
  }

  /** A caching or control page with the current values, WCE or D_SENSE flipped at random. */
  #modeSelect(state: FuzzState): FuzzCommand {
    const random = this.random;
    const tenByte = random.chance(0.5);
    const headerBytes = tenByte ? 8 : 4;
    const caching = random.chance(0.5);
    const pageBytes = caching ? 20 : 12;
    const list = this.#out.subarray(0, headerBytes + pageBytes);
    list.fill(0);
    const page = list.subarray(headerBytes);
    if (caching) {
      page[0] = 0x08;
      page[1] = 18;
      page[2] = (random.chance(0.5) ? !state.writeCacheEnabled : state.writeCacheEnabled) ? 0x04 : 0;
      page[12] = 0x20;
    } else {
      page[0] = 0x0a;
      page[1] = 10;
      page[2] = 0x02 | ((random.chance(0.5) ? !state.descriptorSense : state.descriptorSense) ? 0x04 : 0);
      page[3] = 0x10;
      page[5] = 0x40;
      page[8] = 0xff;
      page[9] = 0xff;
      page[11] = 30;
    }
    const cdb = tenByte ? Uint8Array.of(0x55, 0x10, 0, 0, 0, 0, 0, 0, list.length, 0) : Uint8Array.of(0x15, 0x10, 0, 0, list.length, 0);
    return { cdb, dataOut: list, dataInBytes: 0 };
  }

  #extendedCopy(state: FuzzState): FuzzCommand {
    const random = this.random;
    const targets = this.#disks.length === 1 ? [0] : random.chance(0.5) ? [0, 1] : [1, 0];
    const segmentCount = 1 + random.below(2);
    const list = this.#out.subarray(0, 16 + 32 * targets.length + 28 * segmentCount);
    list.fill(0);
    list[1] = 0x18;
    be(list).setUint16(2, 32 * targets.length);
    be(list).setUint32(8, 28 * segmentCount);
    targets.forEach((diskIndex, index) => {
      const at = 16 + 32 * index;
      list[at] = 0xe4;
      list[at + 4] = 0x01;
      list[at + 5] = 0x03;
      list[at + 7] = 16;
      list.set(this.#disks[diskIndex]!.naa, at + 8);
    });
    for (let index = 0; index < segmentCount; index += 1) {
      const at = 16 + 32 * targets.length + 28 * index;
      const blocks = random.below(2 * state.maxTransferBlocks);
      list[at] = 0x02;
      be(list).setUint16(at + 2, 0x18);
      be(list).setUint16(at + 4, random.below(targets.length));
      be(list).setUint16(at + 6, random.below(targets.length));
      be(list).setUint16(at + 10, blocks);
      be(list).setBigUint64(at + 12, BigInt(this.#lba(state, blocks)));
      be(list).setBigUint64(at + 20, BigInt(this.#lba(state, blocks)));
    }
    const cdb = new Uint8Array(16);
    cdb[0] = 0x83;
    be(cdb).setUint32(10, list.length);
    return { cdb, dataOut: list, dataInBytes: 0 };
  }
}

function rwCdb(form: number, read: boolean, lba: number, blocks: number, byte1: number): Uint8Array {
  if (form === 6) return Uint8Array.of(read ? 0x08 : 0x0a, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, blocks & 0xff, 0);
  const cdb = new Uint8Array(form);
  const view = be(cdb);
  cdb[1] = byte1;
  if (form === 10) {
    cdb[0] = read ? 0x28 : 0x2a;
    view.setUint32(2, lba);
    view.setUint16(7, blocks);
  } else if (form === 12) {
    cdb[0] = read ? 0xa8 : 0xaa;
    view.setUint32(2, lba);
    view.setUint32(6, blocks);
  } else {
    cdb[0] = read ? 0x88 : 0x8a;
    view.setBigUint64(2, BigInt(lba));
    view.setUint32(10, blocks);
  }
  return cdb;
}

/** 10-byte (opcode < 0x80) or 16-byte LBA + length CDB. */
function lbaCdb(opcode: number, lba: number, blocks: number, byte1: number): Uint8Array {
  const cdb = new Uint8Array(opcode < 0x80 ? 10 : 16);
  const view = be(cdb);
  cdb[0] = opcode;
  cdb[1] = byte1;
  if (cdb.length === 10) {
    view.setUint32(2, lba);
    view.setUint16(7, blocks);
  } else {
    view.setBigUint64(2, BigInt(lba));
    view.setUint32(10, blocks);
  }
  return cdb;
}

function getLbaStatusCdb(lba: number, allocation: number): Uint8Array {
  const cdb = new Uint8Array(16);
  cdb[0] = 0x9e;
  cdb[1] = 0x12;
  be(cdb).setBigUint64(2, BigInt(lba));
  be(cdb).setUint32(10, allocation);
  return cdb;
}
