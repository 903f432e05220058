// The client contract: one suite of cases, run against sdk-node in Node and against the browser
// bundles in Chromium (`/crier.min.js`, the core, for the cases it can run; `/crier.full.min.js`
// for those in FULL_CASES), so both SDKs face the same cases. Plain TypeScript with no
// imports but types and the layer's wait (which has none): the browser runner bundles this file
// with esbuild and calls the cases in the page with `window.Crier` as the SDK.
import type * as Sdk from '@crier/sdk-web/full';
import { Signal, waitFor } from '../wait-for.js';

export type ContractSdk = Pick<typeof Sdk, 'connect' | 'encodeText' | 'decodeText' | 'encodeJson' | 'decodeJson' | 'CrierError'>;

export interface ContractEnv {
  sdk: ContractSdk;
  /** A broker started with `--max-channels 3 --max-payload 1024`. */
  url: string;
  /** The same broker through a fault proxy (a TCP relay the runner controls). */
  faults: ContractFaults;
}

/** The fault proxy, as the cases drive it (in a browser, each call goes out of the page). */
export interface ContractFaults {
  /** `ws://` to the broker through the proxy. */
  url: string;
  /** Resets every connection through the proxy: each side sees its socket die, without a close. */
  reset(): Promise<void>;
  /** While on, the proxy resets every new connection at once. */
  refuse(on: boolean): Promise<void>;
  /** Delays each chunk through the proxy by `ms`, each way (chunks read from now on). */
  latency(ms: number): Promise<void>;
}

type Client = Sdk.CrierClientFull;
type Event = Sdk.CrierEvent;

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`contract broken: ${what}`);
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

/** Events of one subscription, and a way to wait (event-driven, with a deadline) for a count. */
function inbox(client: Client, pattern: string, options?: Sdk.SubscribeOptions): { events: Event[]; ready: Promise<void>; count(n: number): Promise<Event[]> } {
  const events: Event[] = [];
  const arrived = new Signal();
  const sub = client.subscribe(pattern, (e) => {
    events.push(e);
    arrived.notify();
  }, options);
  return {
    events,
    ready: sub.ready,
    count: (n) => waitFor(`${n} events on ${pattern}`, () => events.length >= n && events, { wake: arrived, seen: () => `got ${events.length}` }),
  };
}

async function codeOf(env: ContractEnv, p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    check(err instanceof env.sdk.CrierError, `the error is a CrierError (${String(err)})`);
    return (err as Sdk.CrierError).code;
  }
}

/** Runs `body` with `n` connected clients and quits them all afterwards. */
async function withClients(env: ContractEnv, n: number, body: (...clients: Client[]) => Promise<void>, options: Sdk.ClientOptions = {}): Promise<void> {
  const clients = Array.from({ length: n }, () => env.sdk.connect(env.url, options));
  try {
    await Promise.all(clients.map((c) => c.ready()));
    await body(...clients);
  } finally {
    await Promise.all(clients.map((c) => c.quit()));
  }
}

let unique = 0;
/** A channel prefix no other case (or earlier run against the same broker) uses. */
const fresh = (): string => `c${Date.now().toString(36)}${(unique++).toString(36)}`;

/** The cases that need more than the core bundle: the browser runs them on `crier.full.min.js`. */
export const FULL_CASES: ReadonlySet<string> = new Set([
  'the async iterator yields events, and break unsubscribes',
  'request/reply: the responder answers the request; no responder is no_responders at once',
  'request/reply: a request nobody answers times out; the first of two replies wins',
  'presence: counts per channel and per pattern, and join/leave notices of a watched channel',
]);

export const cases: Record<string, (env: ContractEnv) => Promise<void>> = {
  async 'connects and learns its uuid and the broker limits'(env) {
    await withClients(env, 1, async (c) => {
      check(c.state === 'connected', 'state is connected');
      check(typeof c.uuid === 'string' && c.uuid.length > 0, 'a uuid was assigned');
      same(c.limits && { mc: c.limits.maxChannels, mp: c.limits.maxPayload }, { mc: 3, mp: 1024 }, 'limits from welcome');
    });
  },

  async 'an acked publish resolves with id and offset, and subscribers get the same bytes'(env) {
    const ch = `${fresh()}.created`;
    await withClients(env, 3, async (pub, s1, s2) => {
      const a = inbox(s1, ch);
      const b = inbox(s2, ch);
      await Promise.all([a.ready, b.ready]);
      const data = new Uint8Array([0, 1, 127, 128, 255]);
      const ack = await pub.publish(ch, data);
      same(ack.offset, 1, 'first offset');
      const [[e1], [e2]] = await Promise.all([a.count(1), b.count(1)]);
      for (const e of [e1!, e2!]) {
        same([...e.data], [...data], 'bytes');
        same([e.channel, e.id, e.offset, e.epoch], [ch, ack.id, 1, ack.epoch], 'envelope');
      }
    });
  },

  async "a high-priority publish arrives with priority 'high', a normal one without"(env) {
    const ch = `${fresh()}.alerts`;
    await withClients(env, 2, async (pub, sub) => {
      const box = inbox(sub, ch);
      await box.ready;
      await pub.publish(ch, env.sdk.encodeText('routine'));
      await pub.publish(ch, env.sdk.encodeText('alert'), { priority: 'high' });
      await pub.publish(ch, env.sdk.encodeText('alert, no ack'), { priority: 'high', ack: false });
      const got = await box.count(3);
      same(got.map((e) => [env.sdk.decodeText(e.data), e.priority ?? null]), [['routine', null], ['alert', 'high'], ['alert, no ack', 'high']], 'priorities');
    });
  },

  async '* matches one segment and > one or more'(env) {
    const p = fresh();
    await withClients(env, 2, async (pub, sub) => {
      const star = inbox(sub, `${p}.*`);
      const rest = inbox(sub, `${p}.>`);
      await Promise.all([star.ready, rest.ready]);
      for (const [ch, text] of [[`${p}.a`, '1'], [`${p}.a.b`, '2'], [p, '3'], [`${p}.c`, '4']] as const) {
        await pub.publish(ch, env.sdk.encodeText(text));
      }
      await rest.count(3);
      await star.count(2);
      same(rest.events.map((e) => env.sdk.decodeText(e.data)), ['1', '2', '4'], 'user.> events');
      same(star.events.map((e) => env.sdk.decodeText(e.data)), ['1', '4'], 'user.* events');
    });
  },

  async 'overlapping patterns: every matching handler runs, onEvent once per event'(env) {
    const p = fresh();
    await withClients(env, 2, async (pub, sub) => {
      const seen: string[] = [];
      sub.onEvent((e) => seen.push(e.channel));
      const a = inbox(sub, `${p}.*`);
      const b = inbox(sub, `${p}.x`);
      await Promise.all([a.ready, b.ready]);
      await pub.publish(`${p}.x`, env.sdk.encodeText('x'));
      await a.count(1);
      await b.count(1);
      same(seen, [`${p}.x`], 'onEvent saw the event once');
    });
  },

  async 'unsubscribe stops delivery'(env) {
    const p = fresh();
    await withClients(env, 2, async (pub, sub) => {
      const gone = inbox(sub, `${p}.gone`);
      const kept = inbox(sub, `${p}.kept`);
      await Promise.all([gone.ready, kept.ready]);
      await sub.unsubscribe(`${p}.gone`);
      await pub.publish(`${p}.gone`, env.sdk.encodeText('lost'));
      await pub.publish(`${p}.kept`, env.sdk.encodeText('marker'));
      await kept.count(1); // in order from one publisher: the earlier event would be here by now
      same(gone.events.length, 0, 'events after unsubscribe');
    });
  },

  async 'presence: counts per channel and per pattern, and join/leave notices of a watched channel'(env) {
    const p = fresh();
    const ch = `${p}.room`;
    await withClients(env, 3, async (watcher, a, b) => {
      const changes: Sdk.PresenceChange[] = [];
      const changed = new Signal();
      const watch = watcher.watchPresence(ch, (c) => {
        changes.push(c);
        changed.notify();
      });
      await watch.ready;
      const until = (n: number): Promise<unknown> => waitFor(`${n} presence notices`, () => changes.length >= n, { wake: changed, seen: () => JSON.stringify(changes) });
      await a.subscribe(ch).ready;
      await until(1);
      await b.subscribe(`${p}.*`).ready;
      // The channel: every connection an event on it reaches; the pattern: those holding exactly it.
      same(await b.presence(ch), { subscribers: 3 }, 'subscribers of the channel');
      same(await a.presence(`${p}.*`), { subscribers: 1 }, 'subscribers of the pattern');
      // Anonymous clients: never listed, whatever the grant.
      same(await a.presence(ch, { members: true }), { subscribers: 3, members: [] }, 'members');
      await a.unsubscribe(ch);
      await until(2);
      same(changes, [{ channel: ch, joined: true, subscribers: 2 }, { channel: ch, joined: false, subscribers: 1 }], 'notices');
      same(await codeOf(env, a.presence('a..b')), 'bad_pattern', 'a malformed pattern');
      await watch.unsubscribe();
    });
  },

  async 'request/reply: the responder answers the request; no responder is no_responders at once'(env) {
    const p = fresh();
    await withClients(env, 2, async (requester, responder) => {
      const served = responder.respond(`${p}.*`, (req) => ({
        data: env.sdk.encodeText(`${req.channel}:${env.sdk.decodeText(req.data)}`),
        labels: ['served'],
      }));
      await served.ready;
      const reply = await requester.request(`${p}.echo`, env.sdk.encodeText('hi'), { timeout: 5000 });
      same([reply.channel, env.sdk.decodeText(reply.data), reply.labels], [`${p}.echo`, `${p}.echo:hi`, ['served']], 'the reply');
      check(typeof reply.id === 'string' && reply.id.length > 0 && reply.time > 0, 'the reply has an id and a time');
      const started = Date.now();
      const refused = await requester.request(`${fresh()}.nobody`, env.sdk.encodeText('?'), { timeout: 5000 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      check(refused instanceof env.sdk.CrierError, 'a CrierError');
      same((refused as { code: string }).code, 'no_responders', 'its code');
      check(Date.now() - started < 4000, 'refused before the timeout');
    });
  },

  async 'request/reply: a request nobody answers times out; the first of two replies wins'(env) {
    const p = fresh();
    await withClients(env, 3, async (requester, slow, fast) => {
      const silent = slow.respond(`${p}.silent`, () => undefined);
      const one = slow.respond(`${p}.race`, () => env.sdk.encodeText('one'));
      const two = fast.respond(`${p}.race`, () => env.sdk.encodeText('two'));
      await Promise.all([silent.ready, one.ready, two.ready]);
      const timedOut = await requester.request(`${p}.silent`, env.sdk.encodeText('?'), { timeout: 300 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      same((timedOut as { code?: string } | undefined)?.code, 'timeout', 'no reply: timeout');
      const reply = await requester.request(`${p}.race`, env.sdk.encodeText('?'));
      check(['one', 'two'].includes(env.sdk.decodeText(reply.data)), 'one of the replies');
    });
  },

  async 'queue group: each event to one member, round-robin; a subscriber without a group gets every one'(env) {
    const p = fresh();
    await withClients(env, 5, async (pub, a, b, c, watcher) => {
      const members = [a, b, c].map((m) => inbox(m, `${p}.*`, { group: 'workers' }));
      const all = inbox(watcher, `${p}.*`);
      await Promise.all([...members, all].map((m) => m.ready));
      for (let n = 0; n < 30; n++) await pub.publish(`${p}.job`, env.sdk.encodeText(String(n)));
      await all.count(30);
      await Promise.all(members.map((m) => m.count(10)));
      const spread = members.map((m) => m.events.map((e) => Number(env.sdk.decodeText(e.data))));
      same(spread.flat().sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i), 'each event to exactly one member');
      same(spread.map((s) => s.length), [10, 10, 10], 'round-robin spread');
    });
  },

  async 'the async iterator yields events, and break unsubscribes'(env) {
    const ch = `${fresh()}.it`;
    await withClients(env, 2, async (pub, sub) => {
      const subscription = sub.subscribe(ch);
      await subscription.ready;
      const published = (async () => {
        for (const t of ['a', 'b', 'c']) await pub.publish(ch, env.sdk.encodeText(t));
      })();
      const got: string[] = [];
      for await (const e of subscription) {
        got.push(env.sdk.decodeText(e.data));
        if (got.length === 3) break;
      }
      await published;
      same(got, ['a', 'b', 'c'], 'iterated events');
      // The break freed the pattern: a new subscription to something else fits the limit of 3.
      await Promise.all([sub.subscribe(`${ch}.1`).ready, sub.subscribe(`${ch}.2`).ready, sub.subscribe(`${ch}.3`).ready]);
    });
  },

  async 'text and JSON helpers round-trip'(env) {
    const ch = `${fresh()}.json`;
    await withClients(env, 1, async (c) => {
      const box = inbox(c, ch);
      await box.ready;
      await c.publish(ch, env.sdk.encodeJson({ id: 42, name: 'Zoë ✓' }));
      const [e] = await box.count(1);
      same(env.sdk.decodeJson(e!.data), { id: 42, name: 'Zoë ✓' }, 'json');
    });
  },

  async 'bad input is refused with stable codes, and the connection goes on'(env) {
    const p = fresh();
    await withClients(env, 1, async (c) => {
      same(await codeOf(env, c.publish(`${p}.*`, new Uint8Array(1))), 'bad_channel', 'publish to a pattern');
      same(await codeOf(env, c.publish(`${p}..x`, new Uint8Array(1))), 'bad_channel', 'empty segment');
      same(await codeOf(env, c.subscribe(`${p}.>.x`).ready), 'bad_pattern', 'misplaced >');
      same(await codeOf(env, c.publish(`${p}.big`, new Uint8Array(1025))), 'payload_too_large', 'payload past max');
      same(await codeOf(env, c.publish(`${p}.ok`, new Uint8Array(1024))), 'no error', 'payload at max');
    });
  },

  async 'the max-channels limit answers max_channels'(env) {
    const p = fresh();
    await withClients(env, 1, async (c) => {
      for (const n of [1, 2, 3]) same(await codeOf(env, c.subscribe(`${p}.${n}`).ready), 'no error', `subscription ${n}`);
      same(await codeOf(env, c.subscribe(`${p}.4`).ready), 'max_channels', 'fourth subscription');
      await c.unsubscribe(`${p}.1`);
      same(await codeOf(env, c.subscribe(`${p}.4`).ready), 'no error', 'after freeing one');
    });
  },

  async 'a second client with the same uuid and its secret takes over, and the first stays closed'(env) {
    const uuid = fresh();
    const first = env.sdk.connect(env.url, { uuid });
    await first.ready();
    const closed = new Promise<number | undefined>((resolve) => first.on('state', (s, info) => s === 'closed' && resolve(info.code)));
    await withClients(env, 1, async (second) => {
      same(second.uuid, uuid, 'second has the uuid');
      same(await closed, 4001, 'first closed as replaced');
      same(first.state, 'closed', 'first does not reconnect');
    }, { uuid, secret: first.secret! });
  },

  async 'a client with a held uuid but not its secret is refused with forbidden, and the holder stays'(env) {
    const uuid = fresh();
    await withClients(env, 1, async (holder) => {
      const stranger = env.sdk.connect(env.url, { uuid });
      const errors: string[] = [];
      stranger.on('error', (e) => errors.push(e.code));
      same(await codeOf(env, stranger.ready()), 'closed', 'the stranger never connects');
      same(errors, ['forbidden'], 'the stranger is told why');
      same(stranger.state, 'closed', 'the stranger does not retry');
      same(holder.state, 'connected', 'the holder stays');
    }, { uuid });
  },

  async 'resume after a broker-side drop: what was published meanwhile arrives once, in order, then live ones; resumed says recovered'(env) {
    const ch = `${fresh()}.feed`;
    const { faults } = env;
    const sub = env.sdk.connect(faults.url, { reconnect: { initialDelay: 20, maxDelay: 100 } });
    const changed = new Signal();
    const states: string[] = [];
    const resumes: Sdk.ResumedInfo[] = [];
    sub.on('state', (state) => (states.push(state), changed.notify()));
    sub.on('resumed', (info) => (resumes.push(info), changed.notify()));
    try {
      await sub.ready();
      const box = inbox(sub, ch);
      await box.ready;
      await withClients(env, 1, async (pub) => {
        await pub.publish(ch, env.sdk.encodeText('before'));
        await box.count(1);
        // The network drops the subscriber's connection and keeps it away while three are published.
        await faults.refuse(true);
        await faults.reset();
        await waitFor('the subscriber to see the drop', () => states.includes('reconnecting'), { wake: changed });
        for (const t of ['m1', 'm2', 'm3']) await pub.publish(ch, env.sdk.encodeText(t));
        await faults.refuse(false);
        await waitFor('the resume', () => resumes.length > 0, { wake: changed, seen: () => states.join(' ') });
        await pub.publish(ch, env.sdk.encodeText('live'));
        await box.count(5);
        same(box.events.map((e) => env.sdk.decodeText(e.data)), ['before', 'm1', 'm2', 'm3', 'live'], 'every event once, in order');
        same(resumes, [{ recovered: true, replayed: 3 }], 'resumed');
      });
    } finally {
      await faults.refuse(false);
      await sub.quit();
    }
  },

  async 'an acked publish whose ack is lost with the connection is sent again, resolves once, and is delivered once'(env) {
    const ch = `${fresh()}.once`;
    const { faults } = env;
    const pub = env.sdk.connect(faults.url, { reconnect: { initialDelay: 20, maxDelay: 100 } });
    try {
      await pub.ready();
      await withClients(env, 1, async (sub) => {
        const box = inbox(sub, ch);
        await box.ready;
        // The publish reaches the broker a second late, and its ack would come back a second later.
        await faults.latency(1000);
        const acked = pub.publish(ch, env.sdk.encodeText('once'));
        const [delivered] = await box.count(1); // the broker has it: its ack is held in the proxy
        await faults.reset(); // and goes with the connection
        await faults.latency(0);
        const ack = await acked; // sent again with its message id after the reconnect
        same([ack.id, ack.offset], [delivered!.id, delivered!.offset], "the ack of the resent publish is the first one's");
        await pub.publish(ch, env.sdk.encodeText('after')); // behind it from the same publisher
        await box.count(2);
        same(box.events.map((e) => env.sdk.decodeText(e.data)), ['once', 'after'], 'the subscriber got it once');
      });
    } finally {
      await faults.latency(0);
      await pub.quit();
    }
  },

  async 'quit closes for good and later calls fail with closed'(env) {
    const c = env.sdk.connect(env.url);
    await c.ready();
    await c.quit();
    same(c.state, 'closed', 'state after quit');
    same(await codeOf(env, c.publish('after.quit', new Uint8Array(1))), 'closed', 'publish after quit');
  },
};
