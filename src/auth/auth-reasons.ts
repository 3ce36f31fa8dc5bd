import { Refusal } from '../common/refusal.js';

/** Every reason a 401 carries. Short, fixed strings: never the token or its claims. */
export const AUTH_REASONS = [
  'token missing',
  'token malformed',
  'algorithm not allowed',
  'unknown key',
  'signature invalid',
  'token expired',
  'token not yet valid',
  'issuer mismatch',
  'audience mismatch',
  'subject missing',
] as const;

export type AuthReason = (typeof AUTH_REASONS)[number];

/** A 401 refusal with one of the fixed reasons. */
export function authRefusal(reason: AuthReason): Refusal {
  return new Refusal(401, reason, 'auth');
}

/** The 503 refusal when no signing keys are usable: the client did nothing wrong. */
export function authUnavailable(): Refusal {
  return new Refusal(503, 'authentication unavailable', 'auth_unavailable');
}
