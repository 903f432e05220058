import { CloseCode } from '@crier/protocol';
import type { BrokerCore } from '../core/core.js';
import { PING_FRAME } from './frame-handlers.js';

/**
 * Starts the broker's one keep-alive timer: every `keepAliveInterval` it advances the tick, pings
 * every connection, and closes (4003) and frees those from which nothing arrived for two whole
 * intervals; then it sends each SSE stream its keep-alive comment and closes the streams stalled
 * too long. One timer for the broker, not one per connection or per transport. Returns its stop
 * function.
 */
export function startKeepAlive(core: BrokerCore): () => void {
  const timer = setInterval(keepAliveOnTick, core.options.keepAliveInterval, core);
  timer.unref(); // the server keeps the process alive, not this
  return () => clearInterval(timer);
}

function keepAliveOnTick(core: BrokerCore): void {
  const tick = ++core.tick;
  for (const conn of core.registry.values()) {
    // seenTick = t means a frame arrived between ticks t and t+1. A gap above 2 means the
    // intervals t+1 .. tick-1, at least two of them, passed in silence.
    if (tick - conn.seenTick > 2) {
      core.log.debug({ uuid: conn.uuid }, 'keep-alive timeout');
      core.closeConnection(conn, CloseCode.keepAliveTimeout, 'keep-alive timeout: nothing received for two intervals');
    } else {
      conn.enqueueControl(PING_FRAME);
    }
  }
  core.sse.tick();
}
