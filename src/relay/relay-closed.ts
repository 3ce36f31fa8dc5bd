import type { Socket } from 'node:net';
import type { RelayClosedEvent, RelayOpenedEvent } from '../common/events.js';
import type { PipeEnd } from './relay-pipe.js';

/**
 * The `relay.closed` event of a relay (plain or resumable) that opened as
 * `opened` at `startedAt`: the bytes written to the target, `bytesDown` (what
 * the relay took from the target for the client: not what it read and dropped
 * once the WebSocket was closing), its age and how it ended. Spelled out field
 * by field: spreading `opened` cost more on every relay's end.
 */
export function relayClosedEvent(opened: RelayOpenedEvent, target: Socket, startedAt: number, end: PipeEnd, bytesDown: number): RelayClosedEvent {
  return {
    id: opened.id,
    clientIp: opened.clientIp,
    user: opened.user,
    target: opened.target,
    resumable: opened.resumable,
    bytesUp: target.bytesWritten,
    bytesDown,
    durationMs: Date.now() - startedAt,
    closeCode: end.closeCode,
    closeReason: end.closeReason,
  };
}
