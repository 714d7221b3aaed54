// The import graph of src/scsi has no cycle: command handlers take the LogicalUnit interface
// (logical-unit.ts), so no command file imports device.ts, which imports the command table.
// Type-only imports count as edges: they do not run, but a type cycle couples the files just
// the same, and whether an import is type-only is an accident the next edit can undo.
// Edges are followed out of src/scsi too, so a cycle through src/ring or backstores/ is caught.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const SCSI_DIR = join(ROOT, "src/scsi");

interface ImportEdge {
  specifier: string;
  typeOnly: boolean;
}

// Statements at the start of a line (so comments and strings do not count): `import [type] X
// from`, `import [type] { … } from` (over several lines), `import * as X from`, `export … from`,
// bare `import "x"`, and dynamic `import("x")`.
const STATIC_FROM =
  /^[ \t]*(import|export)(\s+type)?\s+(?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+)\s+from\s*["']([^"']+)["']/gm;
const SIDE_EFFECT = /^[ \t]*import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

function parseImports(source: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const match of source.matchAll(STATIC_FROM)) {
    // `import { type A, type B } from` is type-only too; counted either way.
    const names = match[0].slice(0, match[0].lastIndexOf("from"));
    const inlineTypesOnly = /\{([^}]*)\}/.exec(names)?.[1]?.split(",").every((name) => name.trim() === "" || name.trim().startsWith("type "));
    edges.push({ specifier: match[3]!, typeOnly: match[2] !== undefined || inlineTypesOnly === true });
  }
  for (const match of source.matchAll(SIDE_EFFECT)) edges.push({ specifier: match[1]!, typeOnly: false });
  for (const match of source.matchAll(DYNAMIC)) edges.push({ specifier: match[1]!, typeOnly: false });
  return edges;
}

function resolveSpecifier(fromFile: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined; // packages and bun:/node: modules
  const base = resolve(dirname(fromFile), specifier);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (existsSync(candidate) && candidate.endsWith(".ts")) return candidate;
  }
  throw new Error(`${relative(ROOT, fromFile)}: cannot resolve ${specifier}`);
}

interface Graph {
  /** file → files it imports (absolute paths), type-only imports included. */
  edges: Map<string, Set<string>>;
  /** file → its parsed import statements. */
  imports: Map<string, ImportEdge[]>;
}

/** Every file reachable from src/scsi/*.ts through relative imports, with its edges. */
function buildGraph(): Graph {
  const edges = new Map<string, Set<string>>();
  const imports = new Map<string, ImportEdge[]>();
  const pending = readdirSync(SCSI_DIR)
    .filter((name) => name.endsWith(".ts"))
    .map((name) => join(SCSI_DIR, name));
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (edges.has(file)) continue;
    const parsed = parseImports(readFileSync(file, "utf8"));
    imports.set(file, parsed);
    const targets = new Set<string>();
    for (const edge of parsed) {
      const target = resolveSpecifier(file, edge.specifier);
      if (target === undefined) continue;
      targets.add(target);
      if (!edges.has(target)) pending.push(target);
    }
    edges.set(file, targets);
  }
  return { edges, imports };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string): void => {
    index.set(node, next);
    lowLink.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of edges.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        lowLink.set(node, Math.min(lowLink.get(node)!, lowLink.get(target)!));
      } else if (onStack.has(target)) {
        lowLink.set(node, Math.min(lowLink.get(node)!, index.get(target)!));
      }
    }
    if (lowLink.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || edges.get(node)?.has(node) === true) found.push(component.sort());
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

const name = (file: string): string => relative(ROOT, file);
const scsi = (file: string): string => join(SCSI_DIR, file);

describe("import graph of src/scsi", () => {
  const graph = buildGraph();

  test("the parser sees type-only, multi-line, namespace and re-export imports", () => {
    const parsed = parseImports(
      [
        'import type { A } from "./a.ts";',
        'import {\n  B,\n  type C,\n} from "./b.ts";',
        'import * as d from "./d.ts";',
        'import { type E } from "./e.ts";',
        'export type { F } from "./f.ts";',
        'import "./g.ts";',
        "const h = await import(\"./h.ts\");",
        '// import { X } from "./comment.ts";',
        ' * import { Y } from "./doc.ts";',
      ].join("\n"),
    );
    expect(parsed).toEqual([
      { specifier: "./a.ts", typeOnly: true },
      { specifier: "./b.ts", typeOnly: false },
      { specifier: "./d.ts", typeOnly: false },
      { specifier: "./e.ts", typeOnly: true },
      { specifier: "./f.ts", typeOnly: true },
      { specifier: "./g.ts", typeOnly: false },
      { specifier: "./h.ts", typeOnly: false },
    ]);
  });

  test("the parser finds every import Bun's own scanner finds", () => {
    const transpiler = new Bun.Transpiler({ loader: "ts" });
    for (const [file, parsed] of graph.imports) {
      const ours = new Set(parsed.map((edge) => edge.specifier));
      for (const scanned of transpiler.scanImports(readFileSync(file, "utf8"))) {
        expect(`${name(file)} → ${scanned.path}: ${ours.has(scanned.path)}`).toBe(`${name(file)} → ${scanned.path}: true`);
      }
    }
  });

  test("the cycle finder finds a cycle, a self-import, and none in a chain", () => {
    const graphOf = (pairs: [string, string][]): Map<string, Set<string>> => {
      const edges = new Map<string, Set<string>>();
      for (const [from, to] of pairs) {
        if (!edges.has(from)) edges.set(from, new Set());
        if (!edges.has(to)) edges.set(to, new Set());
        edges.get(from)!.add(to);
      }
      return edges;
    };
    expect(cycles(graphOf([["a", "b"], ["b", "c"], ["c", "a"], ["c", "d"]]))).toEqual([["a", "b", "c"]]);
    expect(cycles(graphOf([["a", "a"], ["a", "b"]]))).toEqual([["a"]]);
    expect(cycles(graphOf([["a", "b"], ["b", "c"], ["a", "c"]]))).toEqual([]);
  });

  test("the type-only edges into logical-unit.ts are in the graph", () => {
    // What the cycle used to close through: table.ts types its rows by the unit they run on.
    expect(graph.edges.get(scsi("table.ts"))?.has(scsi("logical-unit.ts"))).toBe(true);
    expect(graph.edges.get(scsi("block-io.ts"))?.has(scsi("logical-unit.ts"))).toBe(true);
    expect(graph.edges.get(scsi("device.ts"))?.has(scsi("commands.ts"))).toBe(true);
  });

  test("has no cycle at all, type-only imports included", () => {
    const found = cycles(graph.edges).map((component) => component.map(name));
    expect(found).toEqual([]);
  });

  test("no file of src/scsi imports device.ts", () => {
    const importers = [...graph.edges]
      .filter(([file, targets]) => file.startsWith(SCSI_DIR) && targets.has(scsi("device.ts")))
      .map(([file]) => name(file));
    expect(importers).toEqual([]);
  });

  test("logical-unit.ts is types only and takes from src/scsi nothing but sense types", () => {
    const parsed = graph.imports.get(scsi("logical-unit.ts"))!;
    expect(parsed.length).toBeGreaterThan(0);
    expect(parsed.filter((edge) => !edge.typeOnly)).toEqual([]);
    const fromScsi = [...graph.edges.get(scsi("logical-unit.ts"))!].filter((file) => file.startsWith(SCSI_DIR)).map(name);
    expect(fromScsi).toEqual(["src/scsi/sense.ts"]);
  });
});
