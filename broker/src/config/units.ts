const durationUnits: ReadonlyMap<string, number> = new Map([
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
]);

const sizeUnits: ReadonlyMap<string, number> = new Map([
  ['b', 1],
  ['kb', 1000],
  ['mb', 1000 ** 2],
  ['gb', 1000 ** 3],
  ['kib', 1024],
  ['mib', 1024 ** 2],
  ['gib', 1024 ** 3],
]);

// Anchored, no nested quantifiers: linear on any input.
const NUMBER_WITH_UNIT = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/;

/**
 * Milliseconds from a number of ms, a string of digits (ms), or a string with a unit:
 * `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1.5s"`. Returns `undefined` when it is none of those.
 */
export function parseDuration(value: unknown): number | undefined {
  return parseWithUnit(value, durationUnits, 'ms');
}

/**
 * Bytes from a number, a string of digits, or a string with a unit: `"512KiB"`, `"1MiB"`,
 * `"8MB"` (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024; case-insensitive).
 */
export function parseSize(value: unknown): number | undefined {
  return parseWithUnit(value, sizeUnits, 'b');
}

function parseWithUnit(value: unknown, units: ReadonlyMap<string, number>, bare: string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = NUMBER_WITH_UNIT.exec(value.trim());
  if (!m) return undefined;
  const factor = units.get((m[2] || bare).toLowerCase());
  if (factor === undefined) return undefined;
  return Math.round(Number(m[1]) * factor);
}

/** `30000` → `"30s"`, for help texts. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** `8388608` → `"8MiB"`, for help texts. */
export function formatSize(bytes: number): string {
  if (bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}GiB`;
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}B`;
}
