// Credentials at every door of a broker with auth configured: each credential kind × socket, HTTP
// publish and SSE × allowed / forbidden / expired / tampered, with the exact code, and nothing
// published or delivered on a refusal. Then the life of a credential on a socket: in-band
// refresh, expiry (4007), and who may take a uuid over.
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '@crier/broker';
import { CloseCode, FrameType, PROTOCOL_VERSION } from '@crier/protocol';
import type { Ingress } from '../src/transport/ingress.js';
import { RawClient, cleanup, startBroker, text } from './helpers.js';

const SECRET = 'an-auth-test-secret-of-32-bytes-or-more';
const now = (): number => Math.floor(Date.now() / 1000);
const jwt = (payload: JWTPayload): Promise<string> =>
  new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
const sha = (t: string): string => createHash('sha256').update(t).digest('hex');

let broker: Broker;
let http: string;
const creds: Record<string, string> = {};

beforeAll(async () => {
  broker = await startBroker({
    jwtSecret: SECRET,
    jwtClockTolerance: 0,
    jwtPublish: ['user.{sub}.>'],
    jwtSubscribe: ['user.{sub}.>'],
    tokens: [
      { id: 'billing', sha256: sha('billing-secret-token'), publish: ['billing.>'], subscribe: ['billing.>'] },
      { id: 'ops', sha256: sha('ops-secret-token'), subscribe: ['>'], admin: true },
    ],
  });
  http = broker.url.replace(/^ws/, 'http').replace(/\/$/, '');
  creds['jwt'] = await jwt({ sub: '42', exp: now() + 600 });
  creds['expired'] = await jwt({ sub: '42', exp: now() - 60 });
  const good = await jwt({ sub: '42', exp: now() + 600 });
  creds['tampered'] = `${good.slice(0, -4)}${good.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  creds['static'] = 'billing-secret-token';
  creds['staticTampered'] = 'billing-secret-tokeN';
});

afterAll(cleanup);

/** hello with a credential: the welcome, or how the socket was closed. */
async function helloWith(tk: string | undefined, uuid?: string, s?: string): Promise<{ client: RawClient; closed?: { code: number; reason: string } }> {
  const client = await RawClient.open(broker.url);
  client.send({ t: FrameType.hello, v: PROTOCOL_VERSION, ...(tk ? { tk } : {}), ...(uuid ? { u: uuid } : {}), ...(s ? { s } : {}) });
  const first = await Promise.race([
    client.waitFrame('welcome', (f) => f.t === FrameType.welcome).then(() => undefined),
    client.waitClose(),
  ]);
  return first === undefined ? { client } : { client, closed: first };
}

async function httpPublish(channel: string, token?: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${http}/publish/${channel}`, { method: 'POST', body: 'x', headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = (await res.json()) as { code?: string };
  return { status: res.status, ...(body.code ? { code: body.code } : {}) };
}

/** The status of `GET /events`, and its first event's name when it is a stream. */
function sse(channels: string, token?: string, inQuery = false): Promise<{ status: number; code?: string }> {
  const q = inQuery && token ? `&token=${encodeURIComponent(token)}` : '';
  return new Promise((resolve, reject) => {
    const req = get(`${http}/events?channels=${channels}${q}`, { headers: token && !inQuery ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      if (res.statusCode === 200) {
        req.destroy();
        resolve({ status: 200 });
        return;
      }
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { code: string }).code }));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
}

/**
 * The matrix: for each credential kind, its credentials, and for each door what a user sees.
 * `inside`/`outside` are a channel within and outside the kind's grants.
 */
const KINDS = {
  jwt: { valid: 'jwt', expired: 'expired', tampered: 'tampered', inside: 'user.42.m', outside: 'user.43.m' },
  static: { valid: 'static', expired: undefined, tampered: 'staticTampered', inside: 'billing.m', outside: 'user.42.m' },
} as const;
type Outcome = 'allowed' | 'forbidden' | 'expired' | 'unauthorized';
const CASES: [string, keyof typeof KINDS, 'valid' | 'expired' | 'tampered', 'inside' | 'outside', Outcome][] = [];
for (const kind of Object.keys(KINDS) as (keyof typeof KINDS)[]) {
  CASES.push([`${kind}, allowed`, kind, 'valid', 'inside', 'allowed']);
  CASES.push([`${kind}, outside its grants`, kind, 'valid', 'outside', 'forbidden']);
  if (KINDS[kind].expired) CASES.push([`${kind}, expired`, kind, 'expired', 'inside', 'expired']);
  CASES.push([`${kind}, tampered`, kind, 'tampered', 'inside', 'unauthorized']);
}

describe('the refusal matrix: credential kind × door × allowed / forbidden / expired / tampered', () => {
  /** Everything the broker delivers, seen by an in-process subscriber: a refusal must add nothing. */
  const delivered: string[] = [];
  beforeAll(() => {
    broker.subscribe('>', (e) => delivered.push(e.channel));
  });

  const credentialOf = (kind: keyof typeof KINDS, which: 'valid' | 'expired' | 'tampered'): string => creds[KINDS[kind][which]!]!;

  for (const [name, kind, which, where, outcome] of CASES) {
    const channel = KINDS[kind][where];

    it(`socket: ${name}`, async () => {
      const before = { published: broker.stats().published, delivered: delivered.length };
      const { client, closed } = await helloWith(credentialOf(kind, which));
      if (outcome === 'expired') expect(closed).toEqual({ code: CloseCode.tokenExpired, reason: 'unauthorized: token expired' });
      else if (outcome === 'unauthorized') expect(closed).toEqual({ code: CloseCode.unauthorized, reason: expect.stringMatching(/^unauthorized: (bad token signature|unknown token)$/) });
      else {
        expect(closed).toBeUndefined();
        const sub = await client.request({ t: FrameType.subscribe, r: 0, p: channel });
        const pub = await client.request({ t: FrameType.publish, r: 0, c: channel, d: text(name) });
        if (outcome === 'allowed') {
          expect([sub.t, pub.t]).toEqual([FrameType.ack, FrameType.ack]);
          expect((await client.waitEvents(1)).map((e) => e.c)).toEqual([channel]);
          return;
        }
        expect([sub, pub]).toMatchObject([{ t: FrameType.error, code: 'forbidden', r: 1 }, { t: FrameType.error, code: 'forbidden', r: 2 }]);
        expect(client.closed).toBeUndefined(); // the connection stays
      }
      expect({ published: broker.stats().published, delivered: delivered.length }).toEqual(before);
    });

    it(`HTTP publish: ${name}`, async () => {
      const before = { published: broker.stats().published, delivered: delivered.length };
      const answer = await httpPublish(channel, credentialOf(kind, which));
      const expected = { allowed: { status: 202 }, forbidden: { status: 403, code: 'forbidden' }, expired: { status: 401, code: 'unauthorized' }, unauthorized: { status: 401, code: 'unauthorized' } };
      expect(answer).toEqual(expected[outcome]);
      if (outcome !== 'allowed') expect({ published: broker.stats().published, delivered: delivered.length }).toEqual(before);
    });

    it(`SSE (header and token parameter): ${name}`, async () => {
      const pattern = where === 'inside' ? channel.replace(/\.m$/, '.>') : channel;
      const expected = { allowed: { status: 200 }, forbidden: { status: 403, code: 'forbidden' }, expired: { status: 401, code: 'unauthorized' }, unauthorized: { status: 401, code: 'unauthorized' } };
      expect(await sse(pattern, credentialOf(kind, which))).toEqual(expected[outcome]);
      expect(await sse(pattern, credentialOf(kind, which), true)).toEqual(expected[outcome]);
    });
  }

  it('no credential at all: 4008 on a socket, 401 over HTTP and SSE', async () => {
    expect((await helloWith(undefined)).closed).toEqual({ code: CloseCode.unauthorized, reason: expect.stringMatching(/^unauthorized: a credential is required/) });
    expect(await httpPublish('billing.m')).toEqual({ status: 401, code: 'unauthorized' });
    expect(await sse('billing.>')).toEqual({ status: 401, code: 'unauthorized' });
  });

  it('a grant covers a whole pattern or nothing: user.42.> does not allow user.* or user.>, nor a mix', async () => {
    const { client } = await helloWith(creds['jwt']);
    for (const p of ['user.*', 'user.>', '>', 'user.42']) {
      expect(await client.request({ t: FrameType.subscribe, r: 0, p })).toMatchObject({ t: FrameType.error, code: 'forbidden' });
    }
    expect(await sse('user.42.>,billing.>', creds['jwt'])).toEqual({ status: 403, code: 'forbidden' });
  });

  it('never writes a credential into a log line', async () => {
    const entries: string[] = [];
    const { pino } = await import('pino');
    const logger = pino({ level: 'debug' }, { write: (line: string) => entries.push(line) });
    const b = await startBroker({ logger, jwtSecret: SECRET, jwtSubscribe: ['user.{sub}.>'] });
    const base = b.url.replace(/^ws/, 'http').replace(/\/$/, '');
    for (const token of [creds['jwt']!, creds['tampered']!, creds['expired']!]) {
      const res = await fetch(`${base}/events?channels=user.42.>&token=${encodeURIComponent(token)}`);
      await res.body?.cancel();
      await fetch(`${base}/publish/user.42.x`, { method: 'POST', body: 'x', headers: { Authorization: `Bearer ${token}` } });
    }
    expect(entries.length).toBeGreaterThan(0);
    for (const token of [creds['jwt']!, creds['tampered']!, creds['expired']!]) {
      expect(entries.filter((line) => line.includes(token.split('.')[2]!))).toEqual([]);
    }
  });
});

describe('admin and metrics', () => {
  it('admin endpoints: /stats needs an admin credential; /healthz stays open', async () => {
    const stats = async (token?: string): Promise<number> =>
      (await fetch(`${http}/stats`, { headers: token ? { Authorization: `Bearer ${token}` } : {} })).status;
    expect(await stats()).toBe(401);
    expect(await stats(creds['jwt'])).toBe(403);
    expect(await stats('ops-secret-token')).toBe(200);
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
    expect((await fetch(`${http}/metrics`)).status).toBe(200); // open by default
  });

  it('metricsAuth: /metrics for admins only', async () => {
    const guarded = await startBroker({ tokens: [{ id: 'prom', sha256: sha('scraper-token'), admin: true }], metricsAuth: true });
    const metrics = guarded.url.replace(/^ws/, 'http').replace(/\/$/, '/metrics');
    expect((await fetch(metrics)).status).toBe(401);
    const res = await fetch(metrics, { headers: { Authorization: 'Bearer scraper-token' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('crier_connections');
  });
});

describe('a credential on a live socket', () => {
  it('is refreshed in band: the ack carries the new expiry, and the subscription goes on', async () => {
    const { client } = await helloWith(await jwt({ sub: 'r1', exp: now() + 60 }));
    await client.subscribe('user.r1.>');
    const exp = now() + 600;
    expect(await client.request({ t: FrameType.auth, r: 0, tk: await jwt({ sub: 'r1', exp }) })).toMatchObject({ t: FrameType.ack, x: exp * 1000 });
    expect(await client.request({ t: FrameType.auth, r: 0, tk: await jwt({ sub: 'other', exp }) })).toMatchObject({ t: FrameType.error, code: 'forbidden' });
    expect(await client.request({ t: FrameType.auth, r: 0, tk: creds['tampered']! })).toMatchObject({ t: FrameType.error, code: 'unauthorized', msg: 'bad token signature' });
    broker.publish('user.r1.still', text('here'));
    expect((await client.waitEvents(1)).map((e) => e.c)).toEqual(['user.r1.still']);
    expect(client.closed).toBeUndefined();
  });

  it('a refused hello completes its close handshake: the socket, paused while verifying, reads again', async () => {
    const b = await startBroker({ tokens: [{ id: 'x', sha256: sha('x-token') }] });
    const core = (b as unknown as { ingress: Ingress }).ingress;
    const client = await RawClient.open(b.url);
    client.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk: 'wrong' });
    expect(await client.waitClose()).toEqual({ code: CloseCode.unauthorized, reason: 'unauthorized: unknown token' });
    // Still paused, the broker would not read the client's answering close frame until ws gave
    // up on the handshake (2 s later, and then with 1006 on its side).
    expect([...core.sockets].map((c) => c.ws.isPaused)).not.toContain(true);
  });

  it('closes with 4007 when it expires without a refresh', async () => {
    const { client } = await helloWith(await jwt({ sub: 'short', exp: now() + 1 }));
    expect(await client.waitClose(5000)).toEqual({ code: CloseCode.tokenExpired, reason: 'unauthorized: token expired' });
  });

  it('the same principal takes its uuid over without the secret; another one cannot', async () => {
    const first = await helloWith(await jwt({ sub: 'page', exp: now() + 600 }), 'tab-1');
    const reload = await helloWith(await jwt({ sub: 'page', exp: now() + 601 }), 'tab-1');
    expect(reload.closed).toBeUndefined();
    expect(await first.client.waitClose()).toMatchObject({ code: CloseCode.replaced });
    const stranger = await helloWith(await jwt({ sub: 'mallory', exp: now() + 600 }), 'tab-1');
    expect(stranger.closed).toEqual({ code: CloseCode.helloRejected, reason: expect.stringMatching(/^forbidden: uuid tab-1 is held/) });
    expect(reload.client.closed).toBeUndefined();
  });

  it('frames sent right behind the hello wait for the credential, then run in order', async () => {
    const client = await RawClient.open(broker.url);
    client.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk: creds['static']! });
    client.send({ t: FrameType.subscribe, r: 1, p: 'billing.>' });
    client.send({ t: FrameType.publish, r: 2, c: 'billing.early', d: text('e') });
    expect(await client.waitFrame('ack 2', (f) => f.t === FrameType.ack && f.r === 2)).toMatchObject({ t: FrameType.ack });
    expect((await client.waitEvents(1)).map((e) => e.c)).toEqual(['billing.early']);
  });
});
