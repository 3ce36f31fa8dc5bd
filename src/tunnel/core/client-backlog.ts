import type { TunnelWireHandler } from './stream-types.js';

/**
 * Bytes queued towards a tunnel client past which the proxy sends it no new
 * request: a client that stops reading its WebSocket would otherwise collect
 * every visitor's request in the proxy's memory. Visitors get 503 instead.
 * Every protocol version bounds its request backlog with at least this.
 */
export const CLIENT_BACKLOG_BYTES = 16 * 1024 * 1024;

/** The reason of that 503. */
export const CLIENT_NOT_READING_REASON = 'tunnel client is not reading';

/**
 * Whether a new request (or upgrade) must not go out because the client's WebSocket already holds more than
 * `backlogBytes` it has not read. If so, the stream is reset with 503 CLIENT_NOT_READING_REASON, reported to
 * `handler` once the caller has returned (the session is still opening the stream).
 */
export function refusedForBacklog(bufferedAmount: number, backlogBytes: number, streamId: string, handler: TunnelWireHandler | null): boolean {
  if (bufferedAmount <= backlogBytes) return false;
  queueMicrotask(() => handler?.onStreamEvent(streamId, { type: 'reset', reason: CLIENT_NOT_READING_REASON, status: 503 }));
  return true;
}
