import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, decodeText, type CrierClient } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from './browser/harness.js';
import { Inbox } from './helpers.js';

// A shell script's view: publish with a plain HTTP POST, read with SSE, and the same event reaches
// WebSocket subscribers too. Against a broker process, as curl would see it.
let broker: BrokerProcess;
let ws: CrierClient;

beforeAll(async () => {
  broker = await startBrokerProcess();
  ws = connect(broker.url);
  await ws.ready();
});
afterAll(async () => {
  await ws?.quit();
  await broker?.stop();
});

/** Reads an SSE response until `done` says enough; returns the parsed events. */
async function readSse(res: Response, done: (events: { event: string; id?: string; data: string }[]) => boolean) {
  const events: { event: string; id?: string; data: string }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  while (!done(events)) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const e: { event: string; id?: string; data: string } = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        if (i === 0) continue; // a comment
        const [field, val] = [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')];
        if (field === 'event') e.event = val;
        else if (field === 'id') e.id = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length > 0 || e.event !== 'message') events.push({ ...e, data: data.join('\n') });
    }
  }
  await reader.cancel();
  return events;
}

it('an HTTP POST reaches an SSE stream and a WebSocket subscriber alike', async () => {
  const inbox = new Inbox(ws, 'user.*');
  await inbox.subscription.ready;
  const controller = new AbortController();
  const sse = await fetch(`${broker.http}/events?channels=user.*&labels=vip`, { signal: controller.signal });
  expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reading = readSse(sse, (ev) => ev.some((e) => e.event === 'user.created'));

  // Not for the SSE stream (no vip label), but for the socket subscriber.
  const plain = await fetch(`${broker.http}/publish/user.updated`, { method: 'POST', body: 'no label' });
  expect(plain.status).toBe(202);
  const res = await fetch(`${broker.http}/publish/user.created?label=vip`, { method: 'POST', body: '{"id":42}' });
  expect(res.status).toBe(202);
  const ack = (await res.json()) as { id: string; offset: number };
  expect(ack.offset).toBe(1);

  const events = await reading;
  controller.abort();
  expect(events.map((e) => e.event)).toEqual(['subscribed', 'user.created']);
  // The id is the event's stream position, <epoch>:<seq> (what Last-Event-ID resumes from).
  expect(events[1]).toEqual({ event: 'user.created', id: expect.stringMatching(/^\S+:\d+$/), data: '{"id":42}' });

  const got = await inbox.waitForCount(2);
  expect(got.map((e) => [e.channel, decodeText(e.data)])).toEqual([
    ['user.updated', 'no label'],
    ['user.created', '{"id":42}'],
  ]);
  expect(got[1]!.id).toBe(ack.id);
});

it('refusals over HTTP carry the socket codes', async () => {
  const bad = await fetch(`${broker.http}/publish/user.*`, { method: 'POST', body: 'x' });
  expect(bad.status).toBe(400);
  expect(await bad.json()).toMatchObject({ code: 'bad_channel' });
  const badQuery = await fetch(`${broker.http}/events?channels=a.>.b`);
  expect(badQuery.status).toBe(400);
  expect(await badQuery.json()).toMatchObject({ code: 'bad_pattern' });
});
