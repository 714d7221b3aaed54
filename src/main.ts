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
    create: () => import("./cli/create.ts").then((module) => module.createCommand),
    remove: () => import("./cli/remove.ts").then((module) => module.removeCommand),
    list: () => import("./cli/list.ts").then((module) => module.listCommand),
    status: () => import("./cli/status.ts").then((module) => module.statusCommand),
    top: () => import("./cli/top.ts").then((module) => module.topCommand),
    "install-service": () => import("./cli/install-service.ts").then((module) => module.installServiceCommand),
    inspect: () => import("./cli/inspect.ts").then((module) => module.inspectCommand),
    bench: () => import("./cli/bench.ts").then((module) => module.benchCommand),
  },
});

await runMain(main);
