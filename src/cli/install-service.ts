// `tcmu-appliance install-service`: writes the systemd unit for this binary and reloads systemd.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { DEFAULT_UNIT_DIR, renderServiceUnit, UNIT_NAME } from "./service-unit.ts";

export const installServiceCommand = defineCommand({
  meta: { name: "install-service", description: "Install the systemd unit (Type=notify, Restart=always)" },
  args: {
    "unit-dir": { type: "string", description: `Where to write ${UNIT_NAME} (default ${DEFAULT_UNIT_DIR})` },
    binary: { type: "string", description: "Path ExecStart runs (default: this executable)" },
    print: { type: "boolean", description: "Print the unit instead of installing it" },
    reload: { type: "boolean", description: "Run systemctl daemon-reload afterwards (--no-reload to skip)", default: true },
  },
  run({ args }) {
    const binary = resolve(args.binary === undefined ? currentExecutable() : String(args.binary));
    const unit = renderServiceUnit(binary);
    if (args.print === true) {
      process.stdout.write(unit);
      return;
    }
    const unitDir = args["unit-dir"] === undefined ? DEFAULT_UNIT_DIR : String(args["unit-dir"]);
    const path = join(unitDir, UNIT_NAME);
    mkdirSync(unitDir, { recursive: true });
    writeFileSync(path, unit, { mode: 0o644 });
    console.log(`wrote ${path} (ExecStart=${binary} serve)`);
    if (args.reload !== false) {
      const reload = Bun.spawnSync(["systemctl", "daemon-reload"], { stdout: "inherit", stderr: "inherit" });
      if (reload.exitCode !== 0) console.error("install-service: systemctl daemon-reload failed; run it yourself");
    }
    console.log(`next: systemctl enable --now ${UNIT_NAME}`);
  },
});

/** The compiled binary is process.execPath; under `bun src/main.ts` that is bun itself. */
function currentExecutable(): string {
  const script = process.argv[1];
  return script !== undefined && script.endsWith(".ts") ? `${process.execPath} ${resolve(script)}` : process.execPath;
}
