import type { DecodeLimits } from './limits.js';

/**
 * Walks the msgpack structure of `bytes` without building anything, and returns why it breaks the
 * limits (or is truncated, or holds extension types or trailing bytes), or `undefined` when it is
 * fine. `@msgpack/msgpack` has no depth limit; this pass is what keeps a nesting bomb from ever
 * reaching it. Cost: one step per msgpack item header; string and binary bodies are skipped.
 */
export function scanMsgpack(bytes: Uint8Array, limits: DecodeLimits): string | undefined {
  const end = bytes.length;
  // remaining[i] = items still expected at depth i+1 (a map counts keys and values).
  const remaining: number[] = [];
  let pos = 0;
  let items = 1; // the top-level item
  while (items > 0 || remaining.length > 0) {
    if (items === 0) {
      items = remaining.pop()!;
      continue;
    }
    if (pos >= end) return 'truncated msgpack';
    items--;
    const b = bytes[pos++]!;
    let skip = 0;
    let container = -1; // number of child items, when this is a map or array
    let isMap = false;
    let len = 0;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, bool
    } else if (b >= 0x80 && b <= 0x8f) {
      container = b & 0x0f;
      isMap = true;
    } else if (b >= 0x90 && b <= 0x9f) {
      container = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
      len = b & 0x1f;
      if (len > limits.maxStrLength) return 'string too long';
      skip = len;
    } else {
      switch (b) {
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xca: case 0xce: case 0xd2: skip = 4; break;
        case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
        case 0xc4: case 0xc5: case 0xc6:
        case 0xd9: case 0xda: case 0xdb: {
          const width = b === 0xc4 || b === 0xd9 ? 1 : b === 0xc5 || b === 0xda ? 2 : 4;
          if (pos + width > end) return 'truncated msgpack';
          len = readUint(bytes, pos, width);
          pos += width;
          const isBin = b <= 0xc6;
          if (len > (isBin ? limits.maxBinLength : limits.maxStrLength)) {
            return isBin ? 'binary too long' : 'string too long';
          }
          skip = len;
          break;
        }
        case 0xdc: case 0xdd: case 0xde: case 0xdf: {
          const width = b === 0xdc || b === 0xde ? 2 : 4;
          if (pos + width > end) return 'truncated msgpack';
          container = readUint(bytes, pos, width);
          pos += width;
          isMap = b >= 0xde;
          break;
        }
        default:
          // 0xc1 (never used) and the extension types (0xc7-0xc9, 0xd4-0xd8).
          return `unsupported msgpack type 0x${b.toString(16)}`;
      }
    }
    if (skip > 0) {
      if (pos + skip > end) return 'truncated msgpack';
      pos += skip;
    }
    if (container >= 0) {
      if (isMap ? container > limits.maxMapLength : container > limits.maxArrayLength) {
        return isMap ? 'map too large' : 'array too large';
      }
      if (remaining.length + 1 > limits.maxDepth) return 'nesting too deep';
      remaining.push(items);
      items = isMap ? container * 2 : container;
    }
  }
  return pos === end ? undefined : 'trailing bytes after frame';
}

function readUint(bytes: Uint8Array, pos: number, width: number): number {
  let n = 0;
  for (let i = 0; i < width; i++) n = n * 256 + bytes[pos + i]!;
  return n;
}
