import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Authentication of replica-to-replica requests with `CLUSTER_SECRET`.
 *
 * The header carries `<unix ms>.<signature>`, the signature being
 * HMAC-SHA256(secret, "wsproxy-cluster-v1\n<unix ms>\n<METHOD>\n<path and query>")
 * in base64url. The secret itself never travels, a captured header is good for
 * one method and path and only within `CLUSTER_AUTH_MAX_SKEW_MS`, and the
 * signature is compared in constant time. A dedicated header, not
 * `Authorization`, so forwarded tunnel requests keep their own.
 */
export const CLUSTER_AUTH_HEADER = 'x-wsproxy-cluster-auth';

/**
 * The challenge of a 401 for a request without that header (RFC 9110 §11.6.1:
 * a 401 MUST carry `WWW-Authenticate`); the scheme is the service's own.
 */
export const CLUSTER_AUTH_CHALLENGE = { 'WWW-Authenticate': 'WsproxyCluster' } as const;

/** How far a signed request's time may be from this replica's clock, ms. */
export const CLUSTER_AUTH_MAX_SKEW_MS = 60_000;

/** `ok`; `missing`: no credentials at all (401); `invalid`: malformed, stale or wrong (403). */
export type ClusterAuthResult = 'ok' | 'missing' | 'invalid';

function signature(secret: string, timestamp: string, method: string, path: string): Buffer {
  return createHmac('sha256', secret).update(`wsproxy-cluster-v1\n${timestamp}\n${method.toUpperCase()}\n${path}`).digest();
}

/** Header values signed during the current second, by secret, method and path. */
const recent = new Map<string, string>();
let recentSecond = -1;
/** Bounds `recent` (forwarded paths vary with the requester's path). */
const RECENT_MAX = 1024;

/**
 * The header value for a request from this replica to another. The timestamp
 * is whole seconds (in ms), so the many requests of one second to one path
 * share one HMAC computation.
 */
export function signClusterRequest(secret: string, method: string, path: string, now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== recentSecond) {
    recent.clear();
    recentSecond = second;
  }
  const key = `${secret}\n${method}\n${path}`;
  let value = recent.get(key);
  if (value === undefined) {
    const ts = String(second * 1000);
    value = `${ts}.${signature(secret, ts, method, path).toString('base64url')}`;
    if (recent.size < RECENT_MAX) recent.set(key, value);
  }
  return value;
}

/** Checks the header of an incoming request against `secret`, `method` and `path` (with query). */
export function verifyClusterRequest(
  secret: string,
  header: string | string[] | undefined,
  method: string,
  path: string,
  now: number = Date.now(),
): ClusterAuthResult {
  if (header === undefined || header === '') return 'missing';
  if (Array.isArray(header) || secret === '') return 'invalid';
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(header.trim());
  if (!m) return 'invalid';
  const [, ts, sig] = m;
  const expected = signature(secret, ts, method, path);
  const given = Buffer.from(sig, 'base64url');
  const signed = given.length === expected.length && timingSafeEqual(given, expected);
  if (!signed) return 'invalid';
  return Math.abs(now - Number(ts)) <= CLUSTER_AUTH_MAX_SKEW_MS ? 'ok' : 'invalid';
}
