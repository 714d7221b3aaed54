// Builds dist/tcmu-appliance: one self-contained executable. `bun build --compile --bytecode`
// can report an error and still exit 0 (bytecode generation), leaving a binary that dies at
// start, so this script reads the output for errors and runs the result before calling it done.
import { mkdirSync, statSync } from "node:fs";
import { resolve } from "node:path";

const OUTFILE = "dist/tcmu-appliance";
// Workers (and the module a worker imports at run time for `bench --isolation`) are separate
// entrypoints and must sit beside main.ts, or the binary cannot find them (src/worker-urls.ts
// resolves their URLs).
const ENTRYPOINTS = ["src/main.ts", "src/uio-wait-worker.ts", "src/io-thread-worker.ts", "src/configfs-worker.ts", "src/data-plane-worker.ts", "src/rbd-thread-worker.ts", "src/bench-stalling-store.ts"];

mkdirSync("dist", { recursive: true });
const command = [
  process.execPath,
  "build",
  "--compile",
  "--minify",
  "--bytecode",
  "--format=esm",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  `--outfile=${OUTFILE}`,
  ...ENTRYPOINTS,
];
console.log(`$ ${command.slice(1).join(" ")}`);
const build = Bun.spawnSync(command, { stdout: "pipe", stderr: "pipe" });
const output = `${build.stdout.toString()}${build.stderr.toString()}`;
process.stdout.write(output);
if (build.exitCode !== 0 || /\berror\b/i.test(output)) fail(`bun build reported a failure (exit ${build.exitCode})`);

// The binary must start and know its commands; a broken bytecode build fails here.
// Run from / so no .env or bunfig.toml of the checkout could be what makes it work.
const help = Bun.spawnSync([resolve(OUTFILE), "--help"], { stdout: "pipe", stderr: "pipe", cwd: "/" });
const helpText = `${help.stdout.toString()}${help.stderr.toString()}`;
if (help.exitCode !== 0 || !helpText.includes("serve")) fail(`${OUTFILE} --help did not list serve:\n${helpText}`);
console.log(`built ${OUTFILE} (${(statSync(OUTFILE).size / 1048576).toFixed(1)} MiB)`);

function fail(message: string): never {
  console.error(`build failed: ${message}`);
  process.exit(1);
}
