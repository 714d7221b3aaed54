// Sizes as people write them in a dev_config: "1073741824", "512K", "64M", "2G", "1TiB".
// Suffixes are binary (K = 1024), case-insensitive, with an optional "B" or "iB".

const SIZE_PATTERN = /^(\d+)(?:([kmgtp])(?:i?b)?|b)?$/i;
const SUFFIX_SHIFT_BITS: Record<string, number> = { k: 10, m: 20, g: 30, t: 40, p: 50 };

/** The size in bytes, or undefined when `text` is not a size or does not fit 2^53. */
export function parseSizeBytes(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const shift = match[2] === undefined ? 0 : SUFFIX_SHIFT_BITS[match[2].toLowerCase()]!;
  const bytes = BigInt(match[1]!) << BigInt(shift);
  return bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : undefined;
}

/** "64 MiB", "1.5 GiB": for messages. */
export function formatSizeBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${Number(value.toFixed(2))} ${units[unit]}`;
}
