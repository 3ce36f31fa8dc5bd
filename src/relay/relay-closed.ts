import type { Socket } from 'node:net';
import type { RelayClosedEvent, RelayOpenedEvent } from '../common/events.js';
import type { PipeEnd } from './relay-pipe.js';

/**
 * Bytes client→target of a relay: what was written to the target's
 * connection, not what waits in the socket's buffer (`bytesWritten` counts
 * that too, and drops it again when a destroyed socket discards it, which
 * would step a counter back). A write cut by the socket's close counts whole.
 */
export function bytesUpOf(target: Socket): number {
  return target.bytesWritten - target.writableLength;
}

/**
 * The `relay.closed` event of a relay (plain or resumable) that opened as
 * `opened` at `startedAt`: the bytes written to the target (`bytesUpOf`), `bytesDown` (what
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
    bytesUp: bytesUpOf(target),
    bytesDown,
    durationMs: Date.now() - startedAt,
    closeCode: end.closeCode,
    closeReason: end.closeReason,
    endedBy: end.endedBy,
  };
}
