// Every data-plane thread is a JavaScript VM of its own, and every module its entry point loads
// is loaded again in each: in the compiled binary zod cost ~2 MB per thread, node:zlib ~1.5 MB
// and node:crypto ~1 MB (measured 2026-12-07). The control plane parses dev_configs (zod) and
// the workers only open stores, so none of them belongs in a worker's bundle.
import { expect, test } from "bun:test";

test("a data-plane worker loads neither the config parser's zod nor node:zlib nor node:crypto", async () => {
  const build = await Bun.build({ entrypoints: [`${import.meta.dir}/../../src/data-plane-worker.ts`], target: "bun", format: "esm" });
  expect(build.success).toBe(true);
  const bundle = await build.outputs[0]!.text();
  // The bundle names each module it holds in a comment line of its own.
  const modules = [...bundle.matchAll(/^\/\/ (\S+\.[jt]s)$/gm)].map((match) => match[1]!);
  expect(modules).toContain("src/data-plane/worker-loop.ts");
  expect(modules).toContain("backstores/ram/ram-backstore.ts");
  expect(modules.filter((module) => module.includes("node_modules/zod/") || module.endsWith("src/config/dev-config.ts"))).toEqual([]);
  // node:zlib is loaded at the first compressed cluster (require), not with the module (import).
  const hoisted = [...bundle.matchAll(/^import .* from "((?:node:)?(?:zlib|crypto))";$/gm)].map((match) => match[1]);
  expect(hoisted).toEqual([]);
});
