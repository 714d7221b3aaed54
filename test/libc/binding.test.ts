// libc is bound once (src/libc/binding.ts): every other module takes its symbols from there, so
// each thread compiles one set of trampolines and no symbol is bound twice with different types.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { errno, libc } from "../../src/libc/binding.ts";

const ROOT = resolve(import.meta.dir, "../..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

test("only src/libc/binding.ts and the lazily loaded librbd binding call dlopen", () => {
  const opening = [...sources(join(ROOT, "src")), ...sources(join(ROOT, "backstores"))]
    .filter((path) => /\bdlopen\s*\(/.test(readFileSync(path, "utf8")))
    .map((path) => relative(ROOT, path));
  expect(opening.sort()).toEqual(["backstores/rbd/librbd-binding.ts", "src/libc/binding.ts"]);
});

test("the binding works: a failed call sets this thread's errno", () => {
  expect(libc.close(-1)).toBe(-1);
  expect(errno()).toBe(9); // EBADF
  expect(libc.getpid()).toBe(process.pid);
});
