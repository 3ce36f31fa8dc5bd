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

/** How far a signed request's time may be from this replica's clock, ms. */
export const CLUSTER_AUTH_MAX_SKEW_MS = 60_000;

/** `ok`; `missing`: no credentials at all (401); `invalid`: malformed, stale or wrong (403). */
export type ClusterAuthResult = 'ok' | 'missing' | 'invalid';

function signature(secret: string, timestamp: string, method: string, path: string): Buffer {
  return createHmac('sha256', secret).update(`wsproxy-cluster-v1\n${timestamp}\n${method.toUpperCase()}\n${path}`).digest();
}

/** The header value for a request from this replica to another. */
export function signClusterRequest(secret: string, method: string, path: string, now: number = Date.now()): string {
  const ts = String(Math.floor(now));
  return `${ts}.${signature(secret, ts, method, path).toString('base64url')}`;
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
