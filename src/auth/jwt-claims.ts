import { authRefusal } from './auth-reasons.js';

/** What the claims of a verified JWT are checked against. */
export interface ClaimRules {
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceS: number;
}

const MAX_SUBJECT_CHARS = 256;

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/**
 * Checks the registered claims of a verified JWT payload at `nowS` (seconds)
 * and returns its `sub`. `exp` is required; `nbf` and `iat` must not be in the
 * future; `iss`/`aud` are checked when configured. Throws a 401 `Refusal`
 * with one of the fixed reasons.
 */
export function checkClaims(payload: unknown, rules: ClaimRules, nowS: number): string {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw authRefusal('token malformed');
  const p = payload as Record<string, unknown>;
  const tol = rules.clockToleranceS;
  if (!isTime(p.exp)) throw authRefusal('token malformed');
  for (const claim of ['nbf', 'iat'] as const) {
    if (p[claim] !== undefined && !isTime(p[claim])) throw authRefusal('token malformed');
  }
  if (p.exp <= nowS - tol) throw authRefusal('token expired');
  if ((p.nbf as number | undefined) !== undefined && (p.nbf as number) > nowS + tol) throw authRefusal('token not yet valid');
  if ((p.iat as number | undefined) !== undefined && (p.iat as number) > nowS + tol) throw authRefusal('token not yet valid');
  if (rules.issuer !== undefined && p.iss !== rules.issuer) throw authRefusal('issuer mismatch');
  if (rules.audience !== undefined) {
    const aud = typeof p.aud === 'string' ? [p.aud] : Array.isArray(p.aud) ? p.aud : [];
    if (!aud.some((a) => typeof a === 'string' && rules.audience!.includes(a))) throw authRefusal('audience mismatch');
  }
  const sub = p.sub;
  if (typeof sub !== 'string' || sub.trim() === '' || sub.length > MAX_SUBJECT_CHARS) throw authRefusal('subject missing');
  return sub;
}
