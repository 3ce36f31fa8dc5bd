import type { IncomingMessage } from 'node:http';

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Cheap RFC 6455 handshake validation, before any admission work is spent:
 * the problem as a short reason, or null for a valid handshake.
 */
export function checkHandshake(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return 'WebSocket handshake must be GET';
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'Upgrade must be websocket';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY.test(key.trim())) return 'invalid Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13') return 'unsupported Sec-WebSocket-Version';
  return null;
}
