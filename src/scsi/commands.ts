// Every command family's rows, in one list: the opcode table is built from it.
import { BLOCK_COMMANDS } from "./block.ts";
import { PRIMARY_COMMANDS } from "./primary.ts";
import type { OpcodeRow } from "./table.ts";

export const ALL_COMMANDS: readonly OpcodeRow[] = [...PRIMARY_COMMANDS, ...BLOCK_COMMANDS];
