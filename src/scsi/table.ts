// The opcode table: one row per command (or per service action), the only place that says which
// commands exist. Dispatch, REPORT SUPPORTED OPERATION CODES and the coverage tests all read it.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import type { ScsiDevice } from "./device.ts";

export type CommandHandler = (device: ScsiDevice, command: ScsiCommand) => IoResult;

export interface OpcodeRow {
  readonly opcode: number;
  /** For opcodes that carry a service action (SERVICE ACTION IN(16), MAINTENANCE IN…). */
  readonly serviceAction?: number;
  readonly name: string;
  /**
   * CDB usage data (SPC-4 6.35): byte 0 is the opcode, each later byte has a 1 for every bit
   * the command looks at. Its length is the CDB length.
   */
  readonly usage: readonly number[];
  readonly execute: CommandHandler;
}

/** Opcodes whose byte 1 (bits 4..0) selects a service action. */
export const SERVICE_ACTION_OPCODES: ReadonlySet<number> = new Set([0x9e, 0x9f, 0xa3, 0xa4]);

export function serviceActionOf(cdb: Uint8Array): number {
  return cdb[1]! & 0x1f;
}

export class OpcodeTable {
  readonly rows: readonly OpcodeRow[];
  readonly #byOpcode: (OpcodeRow | undefined)[] = new Array(256);
  readonly #byServiceAction = new Map<number, OpcodeRow>();

  constructor(rows: readonly OpcodeRow[]) {
    this.rows = rows;
    for (const row of rows) {
      if (row.usage[0] !== row.opcode) throw new Error(`${row.name}: usage data must start with the opcode`);
      const hasServiceAction = SERVICE_ACTION_OPCODES.has(row.opcode);
      if (hasServiceAction !== (row.serviceAction !== undefined)) {
        throw new Error(`${row.name}: opcode 0x${row.opcode.toString(16)} ${hasServiceAction ? "needs" : "takes no"} service action`);
      }
      if (row.serviceAction === undefined) {
        if (this.#byOpcode[row.opcode] !== undefined) throw new Error(`${row.name}: opcode listed twice`);
        this.#byOpcode[row.opcode] = row;
      } else {
        const key = (row.opcode << 8) | row.serviceAction;
        if (this.#byServiceAction.has(key)) throw new Error(`${row.name}: service action listed twice`);
        this.#byServiceAction.set(key, row);
      }
    }
  }

  lookup(cdb: Uint8Array): OpcodeRow | undefined {
    const opcode = cdb[0]!;
    if (!SERVICE_ACTION_OPCODES.has(opcode)) return this.#byOpcode[opcode];
    return this.#byServiceAction.get((opcode << 8) | serviceActionOf(cdb));
  }

  /** True when the opcode exists with some service action (so a wrong one is a bad field). */
  hasOpcode(opcode: number): boolean {
    if (this.#byOpcode[opcode] !== undefined) return true;
    for (const row of this.rows) if (row.opcode === opcode) return true;
    return false;
  }
}
