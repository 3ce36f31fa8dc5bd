import type { IncomingMessage } from 'node:http';
import { declaresNoBody } from '../common/request-body.js';

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** The problem `checkHandshake` names for a version other than 13: answered 426 with the version this server speaks (RFC 6455 §4.4). */
export const UNSUPPORTED_VERSION = 'unsupported Sec-WebSocket-Version';

/**
 * Cheap RFC 6455 handshake validation, before any admission work is spent:
 * the problem as a short reason, or null for a valid handshake.
 */
export function checkHandshake(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return 'WebSocket handshake must be GET';
  // A body would reach the peer as frames, or (through a tunnel) leave the service waiting for it.
  if (!declaresNoBody(req)) return 'WebSocket handshake must not have a body';
  // RFC 6455 §4.1: HTTP/1.1 or later (the listener answers other major versions 505).
  if (req.httpVersionMajor === 1 && req.httpVersionMinor < 1) return 'WebSocket handshake requires HTTP/1.1';
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'Upgrade must be websocket';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY.test(key.trim())) return 'invalid Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13') return UNSUPPORTED_VERSION;
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined && !isProtocolList(protocols)) return 'invalid Sec-WebSocket-Protocol';
  return null;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * RFC 6455 §4.1: a comma-separated list of distinct tokens (`ws` answers
 * anything else 400 itself, so it is refused here before admission runs).
 */
export function isProtocolList(value: string): boolean {
  const seen = new Set<string>();
  for (const item of value.split(',')) {
    const name = item.replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name) || seen.has(name)) return false;
    seen.add(name);
  }
  return true;
}

/** Whether an upgrade asks for WebSocket among its protocols (one that does not is served as a plain request). */
export function offersWebSocket(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade ?? '';
  // The usual single value, without splitting on every upgrade.
  if (upgrade.toLowerCase() === 'websocket') return true;
  return upgrade.includes(',') && upgrade.split(',').some((p) => p.trim().toLowerCase() === 'websocket');
}
