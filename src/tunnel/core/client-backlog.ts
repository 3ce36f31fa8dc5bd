/**
 * Bytes queued towards a tunnel client past which the proxy sends it no new
 * request: a client that stops reading its WebSocket would otherwise collect
 * every visitor's request in the proxy's memory. Visitors get 503 instead.
 * Every protocol version bounds its request backlog with at least this.
 */
export const CLIENT_BACKLOG_BYTES = 16 * 1024 * 1024;

/** The reason of that 503. */
export const CLIENT_NOT_READING_REASON = 'tunnel client is not reading';
