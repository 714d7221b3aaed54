#!/usr/bin/env bun
// tcmu-appliance: a TCMU handler (LIO target core in userspace) with built-in RAM, file and
// qcow2 backstores. Heavy subcommands load lazily so `--help` stays fast.
import { defineCommand, runMain } from "citty";
import packageJson from "../package.json" with { type: "json" };

const main = defineCommand({
  meta: {
    name: "tcmu-appliance",
    version: packageJson.version,
    description: "A storage appliance in one file: serves LIO TCMU devices from RAM, files, block devices and qcow2 images",
  },
  subCommands: {
    serve: () => import("./cli/serve.ts").then((module) => module.serveCommand),
    bench: () => import("./cli/bench.ts").then((module) => module.benchCommand),
  },
});

await runMain(main);
