/** A public verification key taken from a JWKS document. */
export interface JwksKey {
  readonly kid: string;
  readonly kty: 'RSA' | 'EC' | 'OKP';
  readonly alg?: string;
  readonly [member: string]: unknown;
}

export interface ParsedJwks {
  readonly keys: JwksKey[];
  /** Why individual keys were left out (no key material in these lines). */
  readonly skipped: string[];
}

const ASYMMETRIC = new Set(['RSA', 'EC', 'OKP']);
/** Members that only a private key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

/**
 * Parses a JWKS document and keeps the keys usable for verifying signatures:
 * asymmetric (`RSA`, `EC`, `OKP`), with a `kid`, public only, `use` (when
 * present) `sig`, and not refused by `unfit` (the caller's own test, run
 * before duplicate kids are dropped, so an unfit key does not shadow a fit
 * one). Throws when the body is not a JWKS, so that a broken
 * response never replaces a good cached set; a JWKS with no usable key is
 * returned (empty): the issuer withdrew its keys.
 */
export function parseJwks(text: string, unfit: (key: JwksKey) => string | null = () => null): ParsedJwks {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error('response is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new Error('response is not a JWKS (no "keys" array)');
  }
  const keys: JwksKey[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  (doc as { keys: unknown[] }).keys.forEach((k, i) => {
    const why = unusable(k) ?? unfit(k as JwksKey);
    if (why !== null) {
      skipped.push(`#${i}: ${why}`);
      return;
    }
    const key = k as JwksKey;
    if (seen.has(key.kid)) {
      skipped.push(`#${i}: duplicate kid ${JSON.stringify(key.kid)}`);
      return;
    }
    seen.add(key.kid);
    keys.push(key);
  });
  // An empty result is an answer too (the issuer withdrew every key): the caller stores it.
  return { keys, skipped };
}

function unusable(k: unknown): string | null {
  if (typeof k !== 'object' || k === null || Array.isArray(k)) return 'not an object';
  const key = k as Record<string, unknown>;
  if (typeof key.kid !== 'string' || key.kid === '' || key.kid.length > 256) return 'no usable kid';
  if (typeof key.kty !== 'string' || !ASYMMETRIC.has(key.kty)) return `kid ${JSON.stringify(key.kid)}: kty is not RSA, EC or OKP`;
  if (PRIVATE_MEMBERS.some((m) => m in key)) return `kid ${JSON.stringify(key.kid)}: private key material published`;
  if (key.use !== undefined && key.use !== 'sig') return `kid ${JSON.stringify(key.kid)}: use is not sig`;
  if (key.key_ops !== undefined && !(Array.isArray(key.key_ops) && key.key_ops.includes('verify'))) {
    return `kid ${JSON.stringify(key.kid)}: key_ops lacks verify`;
  }
  if (key.alg !== undefined && typeof key.alg !== 'string') return `kid ${JSON.stringify(key.kid)}: alg is not a string`;
  return null;
}

/** Reads a response body as UTF-8, failing once it exceeds `maxBytes`. */
export async function readCappedText(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`response larger than ${maxBytes} bytes`);
  }
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`response larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
