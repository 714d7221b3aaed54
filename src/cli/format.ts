const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** 67108864 → "64 MiB"; exact values stay exact, others get one decimal. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${UNITS[unit]}`;
}
