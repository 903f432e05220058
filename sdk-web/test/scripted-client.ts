import { FrameType, type WelcomeFrame } from '@crier/protocol';
import { connect } from '../src/full.js';
import type { ClientOptions, CrierClient, CrierClientFull } from '../src/types.js';
import { ManualClock } from './manual-clock.js';
import { record, type Recording } from './record.js';
import { scriptedWebSocket, type ScriptedSocket } from './scripted-socket.js';

export interface ScriptedClient {
  client: CrierClientFull;
  rec: Recording;
  clock: ManualClock;
  sockets: ScriptedSocket[];
  /** The newest socket. */
  socket(): ScriptedSocket;
  /** Opens the newest socket and answers its hello with a welcome. */
  welcome(frame?: Partial<WelcomeFrame>): ScriptedSocket;
}

export const LIMITS = { mc: 3, mp: 1024, bs: 100 };

/**
 * A client on scripted sockets and a manual clock: every step of a test is explicit. The full
 * client, unless `connectWith` makes another (a core client with an entry point: the test then
 * uses only what that one has).
 */
export function scriptedClient(
  options: ClientOptions = {},
  connectWith: (url: string, options: ClientOptions) => CrierClient = connect,
): ScriptedClient {
  const clock = new ManualClock();
  const { WebSocket, sockets } = scriptedWebSocket();
  const client = connectWith('ws://broker.test', { WebSocket, timers: clock, random: () => 0.5, ...options }) as CrierClientFull;
  const rec = record(client);
  const socket = (): ScriptedSocket => sockets.at(-1)!;
  return {
    client,
    rec,
    clock,
    sockets,
    socket,
    welcome(frame = {}) {
      const s = socket();
      if (s.readyState === 0) s.open();
      s.receive({ t: FrameType.welcome, v: 1, u: 'uuid-1', ka: 1000, lim: LIMITS, s: 'secret-1', ...frame });
      return s;
    },
  };
}
