// The cheapest correct way for a raw load-generator client to count the events in a crier
// message (one or more msgpack frames back to back): skip each value's bytes, build nothing.

/** Number of top-level msgpack values in `b`. Assumes well-formed input (it comes from crier). */
export function countFrames(b: Uint8Array): number {
  let pos = 0;
  let count = 0;
  while (pos < b.length) {
    pos = skip(b, pos);
    count++;
  }
  return count;
}

function skip(b: Uint8Array, pos: number): number {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const x = b[pos++]!;
    if (x < 0x80 || x >= 0xe0 || x === 0xc0 || x === 0xc2 || x === 0xc3) continue;
    if (x < 0x90) pending += 2 * (x & 0x0f);
    else if (x < 0xa0) pending += x & 0x0f;
    else if (x < 0xc0) pos += x & 0x1f;
    else {
      switch (x) {
        case 0xc4: case 0xd9: pos += 1 + b[pos]!; break;
        case 0xc5: case 0xda: pos += 2 + ((b[pos]! << 8) | b[pos + 1]!); break;
        case 0xc6: case 0xdb: pos += 4 + (b[pos]! * 2 ** 24 + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!)); break;
        case 0xcc: case 0xd0: pos += 1; break;
        case 0xcd: case 0xd1: pos += 2; break;
        case 0xca: case 0xce: case 0xd2: pos += 4; break;
        case 0xcb: case 0xcf: case 0xd3: pos += 8; break;
        case 0xdc: pending += (b[pos]! << 8) | b[pos + 1]!; pos += 2; break;
        case 0xde: pending += 2 * ((b[pos]! << 8) | b[pos + 1]!); pos += 2; break;
        default: throw new Error(`countFrames: unexpected byte 0x${x.toString(16)}`);
      }
    }
  }
  return pos;
}
