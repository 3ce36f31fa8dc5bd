import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { RETRY_AFTER_S, statusText } from '../common/refusal.js';
import { resetSocket } from '../common/reset-socket.js';

/** The reason of a 408 for a request body that stopped arriving. */
export const BODY_TIMEOUT_REASON = 'request body not received in time';

/**
 * The response Node is still making on a connection (`socket._httpMessage`),
 * or null: a raw answer written now would cut into it.
 */
export function responseInFlight(socket: Duplex): ServerResponse | null {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

/** Headers a plain-text refusal carries for its status alone: a 503 says when to come back, whichever path answers it. */
function statusHeaders(status: number): Record<string, string> {
  return status === 503 ? { 'Retry-After': RETRY_AFTER_S } : {};
}

/**
 * Answers an upgrade request that will not become a WebSocket with a complete
 * HTTP response and closes the socket. Used before the handshake, where no
 * framework response object exists. A 503 carries `Retry-After`, as every 503
 * refusal does.
 */
export function writeHttpRefusal(socket: Duplex, status: number, reason: string, extraHeaders: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = reason + '\n';
  const headers = [
    `HTTP/1.1 ${status} ${statusText(status)}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries({ ...statusHeaders(status), ...extraHeaders }).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(headers.join('\r\n') + '\r\n\r\n' + body);
  // A peer that never reads must not keep the socket open.
  setTimeout(() => socket.destroy(), 5000).unref();
}

/**
 * Answers an HTTP request with a short plain-text reason (never anything from
 * a tunnel; a 503 carries `Retry-After`, as every 503 refusal does), or, when
 * its head already went out, aborts the response with a TCP reset of its
 * connection: a response without Content-Length or chunked framing (an
 * HTTP/1.0 requester's, delimited by the close) cut short behind a FIN would
 * look complete.
 */
export function answerPlain(res: ServerResponse, status: number, reason: string, close = false): void {
  if (res.headersSent) {
    if (res.socket) resetSocket(res.socket);
    res.destroy();
    return;
  }
  const body = reason + '\n';
  res.statusCode = status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  for (const [name, value] of Object.entries(statusHeaders(status))) res.setHeader(name, value);
  if (close) res.setHeader('connection', 'close');
  res.end(body);
}
