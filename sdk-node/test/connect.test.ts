// sdk-node's connect: the sdk-web client with `ws` injected, against the same fake broker.
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import * as web from '@crier/sdk-web/full';
import * as node from '../src/index.js';
import { FrameType } from '@crier/protocol';
import { CloseCode, ErrorCode, connect, decodeText, encodeText, type CrierClient } from '../src/index.js';
import { startFakeBroker, type FakeBroker } from '../../sdk-web/test/fake-broker.js';
import { changed, waitFor } from '../../sdk-web/test/wait-for.js';

const brokers: FakeBroker[] = [];
const clients: CrierClient[] = [];

afterEach(async () => {
  vi.unstubAllGlobals();
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
});

async function broker(): Promise<FakeBroker> {
  const b = await startFakeBroker();
  brokers.push(b);
  return b;
}

describe('@crier/sdk-node', () => {
  it('connects with ws when there is no global WebSocket, publishes and receives', async () => {
    vi.stubGlobal('WebSocket', undefined);
    const b = await broker();
    const c = connect(b.url);
    clients.push(c);
    const got: string[] = [];
    await waitFor('subscribed', c.subscribe('greet.*', (e) => (got.push(decodeText(e.data)), changed())).ready);
    const ack = await waitFor('ack', c.publish('greet.world', encodeText('hello')));
    expect(ack).toEqual({ id: 'ev-1', offset: 1, epoch: 'E1' });
    await waitFor('the event', () => got.length === 1);
    expect(got).toEqual(['hello']);
    await waitFor('quit', c.quit());
    expect(b.connections[0]!.frames.at(-1)).toEqual({ t: FrameType.quit });
  });

  it('reconnects after a broker restart (1001), with ws underneath', async () => {
    const b = await broker();
    const c = connect(b.url, { random: () => 0 });
    clients.push(c);
    c.on('state', changed);
    await waitFor('ready', c.ready());
    b.connections[0]!.close(CloseCode.goingAway);
    await waitFor('the reconnect', () => b.connections.length === 2 && c.state === 'connected');
    expect(b.connections[1]!.frames[0]).toEqual({ t: FrameType.hello, v: 1, u: c.uuid, s: c.secret });
  });

  it('uses options.WebSocket when given', async () => {
    const b = await broker();
    const made: string[] = [];
    class Counting extends WebSocket {
      constructor(url: string) {
        super(url);
        made.push(url);
      }
    }
    const c = connect(b.url, { WebSocket: Counting });
    clients.push(c);
    await waitFor('ready', c.ready());
    expect(made).toEqual([b.url]);
  });

  it('re-exports all of @crier/sdk-web/full, with its own connect', () => {
    expect(Object.keys(node).sort()).toEqual(Object.keys(web).sort());
    expect(node.connect).not.toBe(web.connect);
    expect(node.CrierError).toBe(web.CrierError);
    expect(ErrorCode.closed).toBe('closed');
    expect(node.backoffDelay(1, node.DEFAULT_BACKOFF, () => 1)).toBe(500);
  });
});
