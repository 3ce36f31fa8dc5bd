import { constants, createPublicKey, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JwksKey } from './jwks-document.js';

/**
 * Signature checks of compact JWS with `node:crypto`: synchronous, on a
 * `KeyObject` imported once per key. WebCrypto (what `jose` uses) costs an
 * async hop per verification, several times the RSA verify itself; the
 * admission path verifies a JWT on every connection.
 */

interface AlgSpec {
  /** Digest for `crypto.verify`; null for EdDSA. */
  readonly hash: string | null;
  readonly kty: 'RSA' | 'EC' | 'OKP';
  /** EC curve / OKP subtype the key must have. */
  readonly curves?: readonly string[];
  readonly pss?: boolean;
  /** ECDSA signatures in JWS are r||s (IEEE P1363), not DER. */
  readonly p1363?: boolean;
}

const ALGS: Readonly<Record<string, AlgSpec>> = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  PS256: { hash: 'sha256', kty: 'RSA', pss: true },
  PS384: { hash: 'sha384', kty: 'RSA', pss: true },
  PS512: { hash: 'sha512', kty: 'RSA', pss: true },
  ES256: { hash: 'sha256', kty: 'EC', curves: ['P-256'], p1363: true },
  ES384: { hash: 'sha384', kty: 'EC', curves: ['P-384'], p1363: true },
  ES512: { hash: 'sha512', kty: 'EC', curves: ['P-521'], p1363: true },
  EdDSA: { hash: null, kty: 'OKP', curves: ['Ed25519', 'Ed448'] },
};

/** The JWS algorithms this verifier checks, in the order the configuration lists them. */
export const SUPPORTED_JWT_ALGORITHMS: readonly string[] = Object.keys(ALGS);

/** RSA keys shorter than this never verify (RFC 7518 §3.3 asks for 2048). */
const MIN_RSA_BITS = 2048;

/** A JWKS key ready to verify one algorithm. */
export interface VerificationKey {
  readonly alg: string;
  readonly key: KeyObject;
}

/**
 * Imports `jwk` for `alg`, or returns null when the key cannot do `alg` (wrong
 * type or curve, too short, or a JWK `alg` naming another algorithm).
 */
export function importVerificationKey(jwk: JwksKey, alg: string): VerificationKey | null {
  return importVerificationKeys(jwk, [alg]).get(alg)!;
}

/** `importVerificationKey` for each of `algs`, parsing the key material at most once. */
export function importVerificationKeys(jwk: JwksKey, algs: readonly string[]): Map<string, VerificationKey | null> {
  const out = new Map<string, VerificationKey | null>();
  let key: KeyObject | null | undefined;
  for (const alg of algs) {
    const spec = ALGS[alg];
    if (!spec || !fits(jwk, spec, alg)) {
      out.set(alg, null);
      continue;
    }
    if (key === undefined) key = importPublicKey(jwk);
    const tooShort = spec.kty === 'RSA' && (key?.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS;
    out.set(alg, key && !tooShort ? { alg, key } : null);
  }
  return out;
}

function fits(jwk: JwksKey, spec: AlgSpec, alg: string): boolean {
  if (jwk.kty !== spec.kty) return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  return !spec.curves || spec.curves.includes(String(jwk.crv));
}

function importPublicKey(jwk: JwksKey): KeyObject | null {
  try {
    return createPublicKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' });
  } catch {
    return null;
  }
}

/** Whether `signature` over `signingInput` (`<header>.<payload>` as sent) verifies with `key`. */
export function verifySignature(k: VerificationKey, signingInput: string, signature: Buffer): boolean {
  const spec = ALGS[k.alg]!;
  const data = Buffer.from(signingInput, 'latin1');
  try {
    if (spec.pss) {
      return cryptoVerify(spec.hash, data, { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: digestBytes(spec.hash!) }, signature);
    }
    if (spec.p1363) return cryptoVerify(spec.hash, data, { key: k.key, dsaEncoding: 'ieee-p1363' }, signature);
    return cryptoVerify(spec.hash, data, k.key, signature);
  } catch {
    return false;
  }
}

function digestBytes(hash: string): number {
  return Number(hash.slice(3)) / 8;
}
