import type { CrierEvent, DroppedNotice } from '@crier/sdk-web/full';

// Output formatting of the `crier` command: pure functions from values to lines (no newline).

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const PREVIEW_BYTES = 16;

/** The data as a string if it is valid UTF-8, else undefined. */
export function utf8OrUndefined(data: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(data);
  } catch {
    return undefined;
  }
}

/** Control characters other than tab, line feed and carriage return: not "printable" text. */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB` (powers of 1024). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[i]}`;
}

/** `42s`, `3m 20s`, `2h 5m`, `3d 4h` from seconds. */
export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

/**
 * The data for a human: the text, on one line (line breaks shown as \n), when it is printable
 * UTF-8; else a short hex preview, `<binary 512 B: 0a1b2c…>`.
 */
export function previewData(data: Uint8Array): string {
  const text = utf8OrUndefined(data);
  if (text !== undefined && !UNPRINTABLE.test(text)) return text.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
  let hex = '';
  for (let i = 0; i < Math.min(data.length, PREVIEW_BYTES); i++) hex += data[i]!.toString(16).padStart(2, '0');
  return `<binary ${formatBytes(data.length)}: ${hex}${data.length > PREVIEW_BYTES ? '…' : ''}>`;
}

const two = (n: number): string => String(n).padStart(2, '0');

/** `[14:23:15] user.created: {"id":42}`, with ` (labels a,b; key k)` before the colon when set. */
export function formatEventLine(event: CrierEvent): string {
  const t = new Date(event.time);
  const extras: string[] = [];
  if (event.labels && event.labels.length > 0) extras.push(`labels ${event.labels.join(',')}`);
  if (event.key !== undefined) extras.push(`key ${event.key}`);
  const suffix = extras.length > 0 ? ` (${extras.join('; ')})` : '';
  return `[${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}] ${event.channel}${suffix}: ${previewData(event.data)}`;
}

/** The `--json` form of an event: the same keys on every line, for `jq`. */
export interface JsonEvent {
  id: string;
  channel: string;
  offset: number;
  epoch: string;
  /** ISO-8601, UTC. */
  time: string;
  labels: string[];
  key: string | null;
  /** The text when the data is valid UTF-8, else its bytes in base64. */
  data: string | { base64: string };
}

export function toJsonEvent(event: CrierEvent): JsonEvent {
  const text = utf8OrUndefined(event.data);
  return {
    id: event.id,
    channel: event.channel,
    offset: event.offset,
    epoch: event.epoch,
    time: new Date(event.time).toISOString(),
    labels: event.labels ?? [],
    key: event.key ?? null,
    data: text !== undefined ? text : { base64: Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength).toString('base64') },
  };
}

export function formatEventJson(event: CrierEvent): string {
  return JSON.stringify(toJsonEvent(event));
}

/** `missed 12 events (slow consumer): user.created 10, user.deleted 2`. */
export function formatDropped(notice: DroppedNotice): string {
  const why = notice.source === 'broker' ? 'the broker dropped them: this listener is too slow' : 'local buffer full';
  const channels = [...notice.channels].map(([channel, n]) => `${channel} ${n}`).join(', ');
  return `missed ${notice.total} event${notice.total === 1 ? '' : 's'} (${why})${channels ? `: ${channels}` : ''}`;
}

/** Nested objects flattened to `a.b` keys, in document order. */
function flatten(value: unknown, prefix: string, out: [string, unknown][]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, value]);
}

/** One stat for a human: durations, bytes and milliseconds by the key's name, counts grouped. */
function formatStat(key: string, value: unknown): string {
  if (Array.isArray(value)) {
    // Lists of small records ({ channel, events }): one `a b` item each, comma-separated.
    const items = value.map((item: unknown) =>
      item !== null && typeof item === 'object' ? Object.values(item).map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' ') : String(item),
    );
    return items.length > 0 ? items.join(', ') : '(none)';
  }
  if (typeof value !== 'number') return typeof value === 'string' ? value : JSON.stringify(value);
  const last = key.slice(key.lastIndexOf('.') + 1);
  if (last === 'uptime') return formatDuration(value);
  if (key.startsWith('memory.') || /bytes/i.test(last)) return formatBytes(value);
  if (/Ms$/.test(last)) return `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`;
  return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
}

/** `/stats` as aligned `key: value` lines. */
export function formatStats(stats: unknown): string[] {
  const rows: [string, unknown][] = [];
  flatten(stats, '', rows);
  const width = Math.max(0, ...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width)} ${formatStat(k, v)}`);
}
