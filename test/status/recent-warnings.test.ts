import { expect, test } from "bun:test";
import { RecentWarnings } from "../../src/status/recent-warnings.ts";

test("a wrapped log still logs everything and keeps its last warnings and errors, oldest first", () => {
  const lines: string[] = [];
  const log = {
    debug: (message: string) => void lines.push(`debug ${message}`),
    info: (message: string) => void lines.push(`info ${message}`),
    warn: (message: string) => void lines.push(`warn ${message}`),
    error: (message: string) => void lines.push(`error ${message}`),
  };
  const warnings = new RecentWarnings(3);
  const wrapped = warnings.wrap(log, "serve");
  wrapped.debug("d");
  wrapped.info("i");
  for (let index = 0; index < 4; index += 1) wrapped.warn(`w${index}`);
  wrapped.error("e");
  expect(lines).toEqual(["debug d", "info i", "warn w0", "warn w1", "warn w2", "warn w3", "error e"]);
  expect(warnings.entries.map((entry) => `${entry.level} ${entry.source} ${entry.message}`)).toEqual(["warn serve w2", "warn serve w3", "error serve e"]);
  expect(Number.isNaN(Date.parse(warnings.entries[0]!.time))).toBe(false);
});
