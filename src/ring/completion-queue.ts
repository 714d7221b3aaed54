// Finished commands waiting for a ring slot to carry their completion. Under CAP_OOOC any CMD
// slot from cmd_tail on takes the oldest finished command (its request was copied out, so the
// slot is free: "tail-steal"); without it a slot takes only its own command, so completions wait
// until everything before them has finished. Bounded by the slot count: each command is queued once.
import type { ScsiCommand } from "./command.ts";

export class CompletionQueue {
  readonly #queue: Int32Array;
  #head = 0;
  #count = 0;

  constructor(slotCount: number) {
    this.#queue = new Int32Array(slotCount);
  }

  push(command: ScsiCommand): void {
    const capacity = this.#queue.length;
    if (this.#count === capacity) throw new Error("completion queue overflow: a command completed twice");
    this.#queue[(this.#head + this.#count) % capacity] = command.slotIndex;
    this.#count += 1;
  }

  /** The oldest finished command's slot index, or -1. */
  takeOldest(): number {
    if (this.#count === 0) return -1;
    const slotIndex = this.#queue[this.#head]!;
    this.#head = (this.#head + 1) % this.#queue.length;
    this.#count -= 1;
    return slotIndex;
  }

  /** The slot index of the finished command with `cmdId`, taken out of the queue, or -1. */
  takeWithId(cmdId: number, slotOf: (slotIndex: number) => ScsiCommand): number {
    const capacity = this.#queue.length;
    for (let index = 0; index < this.#count; index += 1) {
      const slotIndex = this.#queue[(this.#head + index) % capacity]!;
      if (slotOf(slotIndex).cmdId !== cmdId) continue;
      // Close the gap: move the entries before it up by one.
      for (let move = index; move > 0; move -= 1) {
        this.#queue[(this.#head + move) % capacity] = this.#queue[(this.#head + move - 1) % capacity]!;
      }
      this.#head = (this.#head + 1) % capacity;
      this.#count -= 1;
      return slotIndex;
    }
    return -1;
  }
}
