// The commands a device has in flight: a bounded pool of command slots (made as the queue depth
// first needs them, then reused, so an idle device costs little), the data bytes they hold
// against the in-flight bound, and which cmd_ids are out (to notice one posted twice). Each slot
// goes free → running → done → free; any other step is a bug that would reply twice or reuse a
// live slot, so it throws (on a worker that releases the device, which is reattached).
import { ScsiCommand } from "./command.ts";

/** cmd_id is a u16. */
const CMD_ID_COUNT = 0x10000;
const SLOT_FREE = 0;
const SLOT_RUNNING = 1;
const SLOT_DONE = 2;

export class InFlightCommands {
  readonly slotCount: number;
  readonly bytesMax: number;
  readonly #memory: Uint8Array;
  readonly #baseAddress: number;
  readonly #onSlotMade: (command: ScsiCommand) => void;
  readonly #slots: ScsiCommand[] = [];
  readonly #freeSlots: Int32Array;
  #freeSlotCount = 0;
  /** Per slot: SLOT_FREE, SLOT_RUNNING (taken, executing) or SLOT_DONE (reply final, queued). */
  readonly #state: Uint8Array;
  /** Data bytes each slot's command counts against bytesMax. */
  readonly #slotBytes: Float64Array;
  #bytes = 0;
  /** One bit per cmd_id out: 8 KiB instead of a 65536-entry table per device. */
  readonly #idBits = new Uint32Array(CMD_ID_COUNT / 32);

  constructor(memory: Uint8Array, baseAddress: number, slotCount: number, bytesMax: number, onSlotMade: (command: ScsiCommand) => void) {
    if (!(slotCount > 0 && slotCount <= CMD_ID_COUNT)) throw new Error(`slot count ${slotCount} is not in 1..${CMD_ID_COUNT}`);
    this.slotCount = slotCount;
    this.bytesMax = bytesMax;
    this.#memory = memory;
    this.#baseAddress = baseAddress;
    this.#onSlotMade = onSlotMade;
    this.#freeSlots = new Int32Array(slotCount);
    this.#state = new Uint8Array(slotCount);
    this.#slotBytes = new Float64Array(slotCount);
  }

  get count(): number {
    return this.#slots.length - this.#freeSlotCount;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get hasFreeSlot(): boolean {
    return this.#freeSlotCount > 0 || this.#slots.length < this.slotCount;
  }

  /** Whether `bytes` more fit under bytesMax; one command alone may always run. */
  admits(bytes: number): boolean {
    return this.#bytes === 0 || this.#bytes + bytes <= this.bytesMax;
  }

  slot(index: number): ScsiCommand {
    return this.#slots[index]!;
  }

  /** A free slot, reset; the caller checked hasFreeSlot. */
  take(): ScsiCommand {
    let command: ScsiCommand;
    if (this.#freeSlotCount > 0) {
      command = this.#slots[this.#freeSlots[--this.#freeSlotCount]!]!;
    } else {
      command = new ScsiCommand(this.#slots.length, this.#memory, this.#baseAddress);
      this.#slots.push(command);
      this.#onSlotMade(command);
    }
    if (this.#state[command.slotIndex] !== SLOT_FREE) throw new Error(`slot ${command.slotIndex} taken while in use`);
    command.reset();
    this.#state[command.slotIndex] = SLOT_RUNNING;
    return command;
  }

  /** Counts the command's data and cmd_id; false when that cmd_id was already out. */
  admit(command: ScsiCommand, bytes: number): boolean {
    this.#slotBytes[command.slotIndex] = bytes;
    this.#bytes += bytes;
    const word = command.cmdId >>> 5;
    const bit = 1 << (command.cmdId & 31);
    const wasOut = (this.#idBits[word]! & bit) !== 0;
    this.#idBits[word]! |= bit;
    return !wasOut;
  }

  /** The command's reply is final. A second completion of one command is a bug that would reply twice. */
  markDone(command: ScsiCommand): void {
    if (this.#state[command.slotIndex] !== SLOT_RUNNING) throw new Error(`cmd_id ${command.cmdId} (slot ${command.slotIndex}) completed twice`);
    this.#state[command.slotIndex] = SLOT_DONE;
  }

  release(command: ScsiCommand): void {
    const index = command.slotIndex;
    if (this.#state[index] !== SLOT_DONE) throw new Error(`slot ${index} released while ${this.#state[index] === SLOT_FREE ? "free" : "running"}`);
    // A cmd_id posted twice loses its bit with the first release: only the warning depends on it.
    this.#idBits[command.cmdId >>> 5]! &= ~(1 << (command.cmdId & 31));
    this.#bytes -= this.#slotBytes[index]!;
    if (this.#bytes < 0) throw new Error(`in-flight bytes fell to ${this.#bytes}`);
    this.#slotBytes[index] = 0;
    this.#state[index] = SLOT_FREE;
    this.#freeSlots[this.#freeSlotCount++] = index;
  }

  /** Every command in flight with this cmd_id (a TMR names them; more than one only if posted twice). */
  forEachWithId(cmdId: number, each: (command: ScsiCommand) => void): void {
    if ((this.#idBits[cmdId >>> 5]! & (1 << (cmdId & 31))) === 0) return;
    for (let index = 0; index < this.#slots.length; index += 1) {
      const command = this.#slots[index]!;
      if (this.#state[index] === SLOT_RUNNING && command.cmdId === cmdId) each(command);
    }
  }
}
