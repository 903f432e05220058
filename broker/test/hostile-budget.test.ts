// Issue 9, finding 1 at the broker: messages that cost the decoder more than their size. A 1 MiB
// message of 1,024 arrays of 1,024 empty maps blocked the event loop ~150 ms and took ~80 MiB
// of heap, before hello too, and the same junk in an unknown field of a ping was answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, FrameType, MAX_HELLO_MESSAGE_BYTES, encodeFrame, type ErrorFrame, type Frame } from '@crier/protocol';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

let broker: Broker;

beforeAll(async () => {
  broker = await startBroker();
});
afterAll(cleanup);

/** An array of 1,024 arrays of 1,024 empty maps: 1 MiB + 3 KiB of msgpack. */
function emptyMapGrid(): Uint8Array {
  const out = new Uint8Array(3 + 1024 * 1027);
  out.set([0xdc, 0x04, 0x00]);
  for (let i = 0; i < 1024; i++) {
    const at = 3 + i * 1027;
    out.set([0xdc, 0x04, 0x00], at);
    out.fill(0x80, at + 3, at + 1027);
  }
  return out;
}

/** `{t: 7, r: <r>, junk: <raw>}`: a ping (with a request id, to find its answer) and a field nobody knows. */
function pingWithJunk(r: number, raw: Uint8Array): Uint8Array {
  const head = [0x83, 0xa1, 0x74, FrameType.ping, 0xa1, 0x72, r, 0xa4, ...text('junk')];
  const out = new Uint8Array(head.length + raw.length);
  out.set(head);
  out.set(raw, head.length);
  return out;
}

const isError = (f: Frame): f is ErrorFrame => f.t === FrameType.error;

async function nextError(c: RawClient, payload: Uint8Array): Promise<ErrorFrame> {
  const before = c.frames.filter(isError).length;
  c.send(payload);
  return waitFor('an error answer', () => c.frames.filter(isError)[before], { wakeOn: [c.changed] });
}

describe('before hello: only a small message is looked at', () => {
  it('closes 4000 frame_too_large on the 1 MiB message, before decoding it', async () => {
    const c = await RawClient.open(broker.url);
    c.send(emptyMapGrid());
    const closed = await c.waitClose();
    expect(closed.code).toBe(CloseCode.badFrame);
    expect(closed.reason).toMatch(/^frame_too_large: a message before hello holds at most 16384 bytes/);
    expect(c.frames).toEqual([]);
  });

  it('closes on any message past the cap, even one starting with a valid hello', async () => {
    expect(MAX_HELLO_MESSAGE_BYTES).toBe(16 * 1024);
    const hello = encodeFrame({ t: FrameType.hello, v: 1 });
    const padded = new Uint8Array(MAX_HELLO_MESSAGE_BYTES + 1);
    padded.set(hello);
    const c = await RawClient.open(broker.url);
    c.send(padded);
    expect((await c.waitClose()).code).toBe(CloseCode.badFrame);
  });

  it('accepts a hello with room to spare under the cap (a long credential, unknown fields)', async () => {
    const hello = [0x83, 0xa1, 0x74, FrameType.hello, 0xa1, 0x76, 1, 0xa3, ...text('pad'), 0xda, 0x30, 0x00];
    const bytes = new Uint8Array(hello.length + 0x3000).fill(0x61);
    bytes.set(hello);
    expect(bytes.length).toBeLessThan(MAX_HELLO_MESSAGE_BYTES);
    const c = await RawClient.open(broker.url);
    c.send(bytes);
    await c.waitFrame('welcome', (f) => f.t === FrameType.welcome);
    expect(c.closed).toBeUndefined();
  });
});

describe('after hello: junk costs at most the value budget, and is refused', () => {
  let c: RawClient;
  beforeAll(async () => {
    c = await RawClient.connect(broker.url);
  });

  it('answers the 1 MiB non-map with bad_frame (refused at its first byte) and goes on', async () => {
    const e = await nextError(c, emptyMapGrid());
    expect(e.code).toBe('bad_frame');
    expect(e.msg).toContain('must be a msgpack map');
    expect(c.closed).toBeUndefined();
  });

  it('refuses the same junk inside an unknown field of a ping: frame_too_large, no pong', async () => {
    const e = await nextError(c, pingWithJunk(5, emptyMapGrid()));
    expect(e.code).toBe('frame_too_large');
    expect(e.msg).toContain('more than 2048 values');
    expect(c.frames.some((f) => f.t === FrameType.pong)).toBe(false);
    // The connection goes on: a plain ping is answered.
    c.send({ t: FrameType.ping });
    await c.waitFrame('pong', (f) => f.t === FrameType.pong);
  });

  it('still answers a ping whose unknown field is small (skipped, not decoded)', async () => {
    const pongs = c.frames.filter((f) => f.t === FrameType.pong).length;
    c.send(pingWithJunk(6, new Uint8Array([0x93, 0x80, 0x80, 0xa2, 0xff, 0xfe]))); // [{}, {}, invalid UTF-8]
    await waitFor('a second pong', () => c.frames.filter((f) => f.t === FrameType.pong).length > pongs, { wakeOn: [c.changed] });
  });
});
