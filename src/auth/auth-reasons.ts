import { errors } from 'jose';
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

/** Maps an error thrown by `jose` while verifying a JWT to a refusal. */
export function refusalFromJoseError(err: unknown): Refusal {
  if (err instanceof Refusal) return err;
  if (err instanceof errors.JWTExpired) return authRefusal('token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    // A claim of the wrong type (e.g. a string `nbf`) is a malformed token, not a time problem.
    if (err.reason === 'invalid') return authRefusal('token malformed');
    switch (err.claim) {
      case 'nbf':
      case 'iat':
        return authRefusal('token not yet valid');
      case 'iss':
        return authRefusal('issuer mismatch');
      case 'aud':
        return authRefusal('audience mismatch');
      case 'sub':
        return authRefusal('subject missing');
      default:
        return authRefusal('token malformed');
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return authRefusal('signature invalid');
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return authRefusal('algorithm not allowed');
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return authRefusal('token malformed');
  // Anything else (e.g. a key that cannot verify this signature): the token was not proven.
  return authRefusal('signature invalid');
}
