import { CloseCode } from '@crier/protocol';
import { PING_FRAME } from './frame-handlers.js';
import type { Ingress } from './ingress.js';
import type { SseHub } from './sse.js';

/**
 * Starts the broker's one keep-alive timer: every `keepAliveInterval` it advances the tick, pings
 * every connection, and closes (4003) and frees those from which nothing arrived for two whole
 * intervals; then it sends each SSE stream its keep-alive comment and closes the streams stalled
 * too long. One timer for the broker, not one per connection or per transport. Returns its stop
 * function.
 */
export function startKeepAlive(ingress: Ingress, sse: SseHub): () => void {
  const timer = ingress.clock.setInterval(() => keepAliveOnTick(ingress, sse), ingress.options.keepAliveInterval);
  return () => ingress.clock.clearTimer(timer);
}

function keepAliveOnTick(ingress: Ingress, sse: SseHub): void {
  const tick = ++ingress.tick;
  for (const conn of ingress.byUuid.values()) {
    // seenTick = t means a frame arrived between ticks t and t+1. A gap above 2 means the
    // intervals t+1 .. tick-1, at least two of them, passed in silence.
    if (tick - conn.seenTick > 2) {
      ingress.log.debug({ uuid: conn.uuid }, 'keep-alive timeout');
      ingress.closeConnection(conn, CloseCode.keepAliveTimeout, 'keep-alive timeout: nothing received for two intervals');
    } else {
      conn.enqueueControl(PING_FRAME);
    }
  }
  sse.tick();
}
