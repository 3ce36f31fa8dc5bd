/**
 * Why the reference client answers a request the proxy forwarded itself instead of handing it to the local
 * service, as a status and a reason; null when it goes on. The same for both protocol versions:
 * - a target not in origin form (400): the proxy reduces absolute-form to origin form, and an absolute URL
 *   would name another host to the local service;
 * - an HTTP `CONNECT` (405): the proxy forwards none, and a local service that accepts one answers with a
 *   tunnel, not a response (none would ever come).
 */
export function localRefusal(kind: 'http' | 'websocket', method: string, path: string): readonly [status: number, reason: string] | null {
  if (!path.startsWith('/')) return [400, 'invalid request target'];
  if (kind === 'http' && method.toUpperCase() === 'CONNECT') return [405, 'CONNECT is not forwarded'];
  return null;
}
