import type { IncomingMessage } from 'node:http';
import type { QueryParams } from '../upgrade/query-params.js';

/**
 * Prefix of the `Sec-WebSocket-Protocol` entry that carries a token:
 * `bearer.<JWT>`. A JWT's characters (base64url and dots) are all valid in a
 * subprotocol token, so the JWT goes in as is.
 */
export const TOKEN_PROTOCOL_PREFIX = 'bearer.';

/** Where a token was found. */
export type TokenCarrier = 'query' | 'header' | 'subprotocol';

export interface FoundToken {
  readonly token: string;
  readonly carrier: TokenCarrier;
}

function isTokenProtocol(protocol: string): boolean {
  return protocol.slice(0, TOKEN_PROTOCOL_PREFIX.length).toLowerCase() === TOKEN_PROTOCOL_PREFIX;
}

/** The subprotocols a client offered, in its order (repeated headers are joined by Node). */
export function offeredProtocols(req: IncomingMessage): string[] {
  const raw = req.headers['sec-websocket-protocol'];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw.join(',') : raw)
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/**
 * For ws `handleProtocols`: the first offered subprotocol that does not carry a
 * token, or `false` (answer no subprotocol). A token-carrying protocol is never
 * echoed back.
 */
export function selectResponseProtocol(protocols: Iterable<string>): string | false {
  for (const p of protocols) {
    if (!isTokenProtocol(p)) return p;
  }
  return false;
}

/**
 * The token of a request, first found wins: `token` query parameter,
 * `Authorization: Bearer`, then a `bearer.<JWT>` subprotocol. Empty values are
 * skipped. `null` when none carries one.
 */
export function extractToken(req: IncomingMessage, query: QueryParams): FoundToken | null {
  const fromQuery = query.get('token');
  if (fromQuery) return { token: fromQuery, carrier: 'query' };

  const authorization = req.headers.authorization;
  if (authorization) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (m) return { token: m[1], carrier: 'header' };
  }

  for (const p of offeredProtocols(req)) {
    if (isTokenProtocol(p) && p.length > TOKEN_PROTOCOL_PREFIX.length) {
      return { token: p.slice(TOKEN_PROTOCOL_PREFIX.length), carrier: 'subprotocol' };
    }
  }
  return null;
}
