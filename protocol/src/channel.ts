import { CrierError, ErrorCode } from './errors.js';

/** Max characters of a channel name or pattern. */
export const MAX_CHANNEL_LENGTH = 255;
/** Max dot-separated segments of a channel name or pattern. */
export const MAX_CHANNEL_SEGMENTS = 16;

// Allowed segment characters: A-Z a-z 0-9 _ - (a lookup table, no regular expression on input).
const segmentChar = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9_-]/.test(ch)) segmentChar[c] = 1;
}

const DOT = 46;

/**
 * Why `name` is not a valid channel name or pattern (a few words: they ship in the browser
 * bundle), or `undefined` when it is. With
 * `allowWildcards`, `*` may stand as a whole segment and `>` as the whole last segment.
 */
export function channelProblem(name: unknown, allowWildcards: boolean): string | undefined {
  if (typeof name !== 'string') return 'not a string';
  const n = name.length;
  if (n === 0) return 'empty';
  if (n > MAX_CHANNEL_LENGTH) return `over ${MAX_CHANNEL_LENGTH} characters`;
  let segments = 1;
  let segStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? name.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (i === segStart) return 'empty segment';
      if (i < n && ++segments > MAX_CHANNEL_SEGMENTS) return `over ${MAX_CHANNEL_SEGMENTS} segments`;
      segStart = i + 1;
    } else if (c === 42 /* * */ || c === 62 /* > */) {
      if (!allowWildcards) return 'is a pattern';
      const wholeSegment = i === segStart && (i + 1 === n || name.charCodeAt(i + 1) === DOT);
      if (!wholeSegment) return `'${String.fromCharCode(c)}' not a whole segment`;
      if (c === 62 && i + 1 !== n) return "'>' not last";
    } else if (c >= 128 || segmentChar[c] !== 1) {
      return `bad character at ${i} (A-Za-z0-9_-)`;
    }
  }
  return undefined;
}

/** Throws `bad_channel` unless `name` is a concrete channel name. */
export function assertChannel(name: unknown): asserts name is string {
  const problem = channelProblem(name, false);
  if (problem !== undefined) throw new CrierError(ErrorCode.badChannel, `channel ${JSON.stringify(name)}: ${problem}`);
}

/** Throws `bad_pattern` unless `pattern` is a valid channel name or pattern. */
export function assertPattern(pattern: unknown): asserts pattern is string {
  const problem = channelProblem(pattern, true);
  if (problem !== undefined) throw new CrierError(ErrorCode.badPattern, `pattern ${JSON.stringify(pattern)}: ${problem}`);
}

/** True when `pattern` holds a `*` or `>` segment. Assumes a valid pattern. */
export function isWildcard(pattern: string): boolean {
  return pattern === '*' || pattern === '>' || pattern.startsWith('*.') || pattern.includes('.*.') ||
    pattern.endsWith('.*') || pattern.endsWith('.>');
}

/**
 * Whether the valid `channel` matches the valid `pattern`. One pass over both strings, no
 * allocation: linear in their length.
 */
export function matchPattern(pattern: string, channel: string): boolean {
  const pn = pattern.length;
  const cn = channel.length;
  let p = 0;
  let c = 0;
  for (;;) {
    // p and c stand at the start of a segment in each string.
    const wholeSegment = p + 1 === pn || pattern.charCodeAt(p + 1) === DOT;
    const head = pattern.charCodeAt(p);
    if (wholeSegment && head === 62 /* > */) return true; // at least this channel segment remains
    if (wholeSegment && head === 42 /* * */) {
      p++;
      while (c < cn && channel.charCodeAt(c) !== DOT) c++;
    } else {
      while (p < pn && pattern.charCodeAt(p) !== DOT) {
        if (c >= cn || channel.charCodeAt(c) !== pattern.charCodeAt(p)) return false;
        p++;
        c++;
      }
      if (c < cn && channel.charCodeAt(c) !== DOT) return false;
    }
    const patternDone = p >= pn;
    const channelDone = c >= cn;
    if (patternDone || channelDone) return patternDone && channelDone;
    p++;
    c++;
  }
}
