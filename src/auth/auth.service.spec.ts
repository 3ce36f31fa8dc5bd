import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Logger, type LoggerService } from '@nestjs/common';
import { base64url, SignJWT, UnsecuredJWT } from 'jose';
import { Refusal } from '../common/refusal.js';
import { parseConfig } from '../config/config.schema.js';
import { ManualClock } from '../../test/support/clock.js';
import { JwksServer, makeKey, mintToken, type TestKey } from '../../test/support/jwks.js';
import { AuthService, selectResponseProtocol } from './auth.service.js';
import { JwksService } from './jwks.service.js';

/** Collects what the services log, so tests can assert tokens never show up. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(...m: unknown[]) { this.lines.push(m.map(String).join(' ')); }
  error(...m: unknown[]) { this.lines.push(m.map(String).join(' ')); }
  warn(...m: unknown[]) { this.lines.push(m.map(String).join(' ')); }
  debug(...m: unknown[]) { this.lines.push(m.map(String).join(' ')); }
  verbose(...m: unknown[]) { this.lines.push(m.map(String).join(' ')); }
}

/** A compact JWS signed by `signer` over exactly these header and claims. */
function signRaw(header: object, claims: object, signer: (input: Buffer) => Buffer): string {
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}

const fakeReq = (headers: Record<string, string> = {}): IncomingMessage => ({ headers }) as unknown as IncomingMessage;
const q = (s = ''): URLSearchParams => new URLSearchParams(s);

async function refusedWith(p: Promise<unknown>, status: number, reason: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Refusal, `expected a Refusal, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.equal(err.status, status);
    assert.equal(err.kind, status === 401 ? 'auth' : 'auth_unavailable');
    return true;
  });
}

describe('AuthService', () => {
  let server: JwksServer;
  let key: TestKey;
  let other: TestKey;
  const logs = new CapturingLogger();

  before(async () => {
    Logger.overrideLogger(logs);
    key = await makeKey('key-1');
    other = await makeKey('key-other');
    server = await JwksServer.start([key]);
  });
  after(async () => {
    await server.stop();
  });
  beforeEach(() => server.publish([key]));

  function makeAuth(env: Record<string, string> = {}, clock = new ManualClock()): AuthService {
    const config = parseConfig({ CLERK_JWKS_URL: server.url, ...env });
    return new AuthService(config, new JwksService(config, clock), clock);
  }

  describe('carriers', () => {
    it('accepts a valid token in the token query parameter', async () => {
      const auth = makeAuth();
      const token = await mintToken(key, { sub: 'user_q' });
      assert.deepEqual(await auth.authenticate(fakeReq(), q(`host=h&token=${token}`)), { userId: 'user_q' });
    });

    it('accepts a valid token in Authorization: Bearer', async () => {
      const auth = makeAuth();
      const token = await mintToken(key, { sub: 'user_h' });
      assert.deepEqual(await auth.authenticate(fakeReq({ authorization: `Bearer ${token}` }), q()), { userId: 'user_h' });
      assert.deepEqual(await auth.authenticate(fakeReq({ authorization: `bearer  ${token}` }), q()), { userId: 'user_h' });
    });

    it('accepts a bearer.<JWT> subprotocol and answers with the non-token protocol', async () => {
      const auth = makeAuth();
      const token = await mintToken(key, { sub: 'user_p' });
      assert.deepEqual(await auth.authenticate(fakeReq({ 'sec-websocket-protocol': `wsproxy, bearer.${token}` }), q()), {
        userId: 'user_p',
        protocol: 'wsproxy',
      });
      assert.deepEqual(await auth.authenticate(fakeReq({ 'sec-websocket-protocol': `bearer.${token},binary` }), q()), {
        userId: 'user_p',
        protocol: 'binary',
      });
      // Only the token protocol offered: nothing to answer with.
      assert.deepEqual(await auth.authenticate(fakeReq({ 'sec-websocket-protocol': `bearer.${token}` }), q()), { userId: 'user_p' });
    });

    it('takes the first carrier found: query, then header, then subprotocol', async () => {
      const auth = makeAuth();
      const good = await mintToken(key, { sub: 'first' });
      const headers = { authorization: 'Bearer garbage', 'sec-websocket-protocol': 'wsproxy, bearer.garbage' };
      assert.deepEqual(await auth.authenticate(fakeReq(headers), q(`token=${good}`)), { userId: 'first' });
      await refusedWith(auth.authenticate(fakeReq({ authorization: `Bearer ${good}` }), q('token=garbage')), 401, 'token malformed');
      await refusedWith(
        auth.authenticate(fakeReq({ authorization: 'Bearer garbage', 'sec-websocket-protocol': `wsproxy, bearer.${good}` }), q()),
        401,
        'token malformed',
      );
      // A query token does not set a protocol even when subprotocols were offered.
      assert.deepEqual(await auth.authenticate(fakeReq({ 'sec-websocket-protocol': 'wsproxy' }), q(`token=${good}`)), { userId: 'first' });
    });

    it('refuses a request without any token with "token missing"', async () => {
      const auth = makeAuth();
      await refusedWith(auth.authenticate(fakeReq(), q('host=h&port=22')), 401, 'token missing');
      await refusedWith(auth.authenticate(fakeReq({ authorization: 'Basic dXNlcjpwYXNz' }), q('token=')), 401, 'token missing');
      await refusedWith(auth.authenticate(fakeReq({ 'sec-websocket-protocol': 'wsproxy, bearer.' }), q()), 401, 'token missing');
    });

    it('selectResponseProtocol never answers a token-carrying protocol', () => {
      assert.equal(selectResponseProtocol(new Set(['wsproxy', 'bearer.a.b.c'])), 'wsproxy');
      assert.equal(selectResponseProtocol(new Set(['bearer.a.b.c', 'Bearer.x', 'wsproxy'])), 'wsproxy');
      assert.equal(selectResponseProtocol(new Set(['bearer.a.b.c'])), false);
      assert.equal(selectResponseProtocol(new Set()), false);
    });
  });

  describe('claims and signatures', () => {
    it('refuses an expired token, and honours the clock tolerance', async () => {
      const auth = makeAuth({ JWT_CLOCK_TOLERANCE_S: '5' });
      const now = Math.floor(Date.now() / 1000);
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${await mintToken(key, { exp: now - 30 })}`)), 401, 'token expired');
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${await mintToken(key, { exp: now - 2 })}`))).userId, 'user_1');
    });

    it('refuses a token without exp, or with time claims that are not numbers', async () => {
      const auth = makeAuth();
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${await mintToken(key, {}, { expiresIn: null })}`)), 401, 'token malformed');
      for (const claims of [{ exp: 'later' }, { nbf: 'soon' }, { iat: 'now' }]) {
        const t = await mintToken(key, claims as Record<string, unknown>);
        await refusedWith(auth.authenticate(fakeReq(), q(`token=${t}`)), 401, 'token malformed');
      }
    });

    it('refuses nbf (and iat) in the future with "token not yet valid"', async () => {
      const auth = makeAuth({ JWT_CLOCK_TOLERANCE_S: '5' });
      const now = Math.floor(Date.now() / 1000);
      const nbf = await mintToken(key, { nbf: now + 60, exp: now + 120 });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${nbf}`)), 401, 'token not yet valid');
      const iat = await mintToken(key, { iat: now + 60, exp: now + 120 });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${iat}`)), 401, 'token not yet valid');
      const withinTolerance = await mintToken(key, { nbf: now + 3, iat: now + 3 });
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${withinTolerance}`))).userId, 'user_1');
    });

    it('checks iss when JWT_ISSUER is set', async () => {
      const auth = makeAuth({ JWT_ISSUER: 'https://clerk.example.com' });
      const good = await mintToken(key, { iss: 'https://clerk.example.com' });
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${good}`))).userId, 'user_1');
      const wrong = await mintToken(key, { iss: 'https://evil.example.com' });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${wrong}`)), 401, 'issuer mismatch');
      const none = await mintToken(key, {});
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${none}`)), 401, 'issuer mismatch');
      // Not set: any iss passes.
      assert.equal((await makeAuth().authenticate(fakeReq(), q(`token=${wrong}`))).userId, 'user_1');
    });

    it('checks aud (string or array) when JWT_AUDIENCE is set', async () => {
      const auth = makeAuth({ JWT_AUDIENCE: 'wsproxy, ssh' });
      const ok = (aud: string | string[]) => mintToken(key, { aud }).then((t) => auth.authenticate(fakeReq(), q(`token=${t}`)));
      assert.equal((await ok('wsproxy')).userId, 'user_1');
      assert.equal((await ok(['other', 'ssh'])).userId, 'user_1');
      await refusedWith(ok('other'), 401, 'audience mismatch');
      await refusedWith(ok(['other', 'another']), 401, 'audience mismatch');
      await refusedWith(mintToken(key).then((t) => auth.authenticate(fakeReq(), q(`token=${t}`))), 401, 'audience mismatch');
    });

    it('refuses a token without sub', async () => {
      const auth = makeAuth();
      const noSub = await mintToken(key, { sub: undefined });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${noSub}`)), 401, 'subject missing');
      const emptySub = await mintToken(key, { sub: '' });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${emptySub}`)), 401, 'subject missing');
    });

    it('refuses alg none', async () => {
      const auth = makeAuth();
      const unsecured = new UnsecuredJWT({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 }).encode();
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${unsecured}`)), 401, 'algorithm not allowed');
      // With a real kid and an empty signature.
      const header = base64url.encode(JSON.stringify({ alg: 'none', kid: key.kid }));
      const payload = base64url.encode(JSON.stringify({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 }));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${header}.${payload}.`)), 401, 'algorithm not allowed');
    });

    it('refuses HS256 signed with the RSA public key bytes (key confusion)', async () => {
      const auth = makeAuth({ JWT_ALGORITHMS: 'RS256,ES256' });
      const body = { sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 };
      for (const secret of [key.spkiPem, JSON.stringify(key.jwk), key.jwk.n as string]) {
        const forged = await new SignJWT(body)
          .setProtectedHeader({ alg: 'HS256', kid: key.kid })
          .sign(new TextEncoder().encode(secret));
        await refusedWith(auth.authenticate(fakeReq(), q(`token=${forged}`)), 401, 'algorithm not allowed');
      }
    });

    it('refuses a token naming a kid its key cannot verify (alg confusion inside the allowed list)', async () => {
      const auth = makeAuth({ JWT_ALGORITHMS: 'RS256,ES256' });
      const ec = await import('jose').then((j) => j.generateKeyPair('ES256'));
      const forged = await new SignJWT({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid })
        .sign(ec.privateKey);
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${forged}`)), 401, 'algorithm not allowed');
    });

    it('verifies every allowed algorithm family, each only with its own kind of key', async () => {
      const algs = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
      const keys = await Promise.all(algs.map((alg) => makeKey(`k-${alg}`, alg)));
      server.publish([key, ...keys]);
      const auth = makeAuth({ JWT_ALGORITHMS: algs.join(',') });
      for (const k of keys) {
        const alg = k.jwk.alg as string;
        const t = await mintToken(k, { sub: `user_${alg}` }, { alg });
        assert.equal((await auth.authenticate(fakeReq(), q(`token=${t}`))).userId, `user_${alg}`, alg);
        const [h, p, sig] = t.split('.');
        const flipped = Buffer.from(sig, 'base64url');
        flipped[flipped.length >> 1] ^= 1;
        await refusedWith(auth.authenticate(fakeReq(), q(`token=${h}.${p}.${flipped.toString('base64url')}`)), 401, 'signature invalid');
      }
      // A key published for one algorithm never verifies another, even of its own family.
      const rsPrivate = KeyObject.from(keys[0].privateKey);
      const asPs = signRaw({ alg: 'PS256', kid: keys[0].kid }, { sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }, (input) =>
        sign('sha256', input, { key: rsPrivate, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
      );
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${asPs}`)), 401, 'algorithm not allowed');
    });

    it('refuses RSA keys shorter than 2048 bits and tokens with critical extensions', async () => {
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const jwk = { ...small.publicKey.export({ format: 'jwk' }), kid: 'small', alg: 'RS256', use: 'sig' };
      server.publish([key, { ...key, kid: 'small', jwk }]);
      const auth = makeAuth();
      const claims = { sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 };
      const weak = signRaw({ alg: 'RS256', kid: 'small' }, claims, (input) => sign('sha256', input, small.privateKey));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${weak}`)), 401, 'algorithm not allowed');
      const rsPrivate = KeyObject.from(key.privateKey);
      const crit = signRaw({ alg: 'RS256', kid: key.kid, crit: ['x-ext'], 'x-ext': 1 }, claims, (input) => sign('sha256', input, rsPrivate));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${crit}`)), 401, 'token malformed');
      // The same token without the critical extension is accepted: the refusal above is about `crit`.
      const plain = signRaw({ alg: 'RS256', kid: key.kid }, claims, (input) => sign('sha256', input, rsPrivate));
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${plain}`))).userId, 'x');
    });

    it('keeps the headers of verified tokens only (at most 64, up to 512 characters) and still checks every token in full', async () => {
      const auth = makeAuth();
      const rsPrivate = KeyObject.from(key.privateKey);
      const claims = { sub: 'h', exp: Math.floor(Date.now() / 1000) + 60 };
      const signed = (header: object): string => signRaw(header, claims, (input) => sign('sha256', input, rsPrivate));
      const kept = (auth as unknown as { headers: Map<string, object> }).headers;

      const good = signed({ alg: 'RS256', kid: key.kid });
      const [h, , sig] = good.split('.') as [string, string, string];
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${good}`))).userId, 'h');
      const entry = kept.get(h);
      assert.ok(entry && Object.isFrozen(entry), 'the verified header is kept, frozen');
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${good}`))).userId, 'h');
      assert.equal(kept.get(h), entry, 'and reused');

      // A kept header says nothing about the rest: a forged payload and a foreign signature still fail.
      const forged = `${h}.${base64url.encode(JSON.stringify({ ...claims, sub: 'admin' }))}.${sig}`;
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${forged}`)), 401, 'signature invalid');
      const otherPrivate = KeyObject.from(other.privateKey);
      const impostor = signRaw({ alg: 'RS256', kid: key.kid, typ: 'impostor' }, claims, (input) => sign('sha256', input, otherPrivate));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${impostor}`)), 401, 'signature invalid');
      assert.equal(kept.has(impostor.split('.')[0]!), false, 'a header whose signature failed is not kept');

      const long = signed({ alg: 'RS256', kid: key.kid, pad: 'x'.repeat(600) });
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${long}`))).userId, 'h');
      assert.equal(kept.has(long.split('.')[0]!), false, 'a header over 512 characters is not kept');

      kept.clear();
      for (let i = 0; i < 70; i++) {
        const token = signed({ alg: 'RS256', kid: key.kid, typ: `JWT-${i}` });
        assert.equal((await auth.authenticate(fakeReq(), q(`token=${token}`))).userId, 'h');
        assert.equal(kept.size, (i % 64) + 1, 'emptied when full');
      }
    });

    it('refuses a token signed by a key not in the JWKS', async () => {
      const auth = makeAuth();
      // Signed by another key but claiming the published kid.
      const impostor = await mintToken(other, { sub: 'admin' }, { kid: key.kid });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${impostor}`)), 401, 'signature invalid');
      // Signed by another key under its own, unpublished kid.
      const stranger = await mintToken(other, { sub: 'admin' });
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${stranger}`)), 401, 'unknown key');
      // No kid at all.
      const noKid = await new SignJWT({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: 'RS256' }).sign(key.privateKey);
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${noKid}`)), 401, 'unknown key');
    });

    it('refuses a token whose payload was altered', async () => {
      const auth = makeAuth();
      const [h, , s] = (await mintToken(key, { sub: 'user_1' })).split('.');
      const p = base64url.encode(JSON.stringify({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 }));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${h}.${p}.${s}`)), 401, 'signature invalid');
    });

    it('puts each check exactly where it says: bounds, segments and time claims, on tokens that are otherwise valid', async () => {
      // On a whole second, so that the boundaries below are exact.
      const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
      const auth = makeAuth({ JWT_CLOCK_TOLERANCE_S: '5', JWKS_REFETCH_COOLDOWN_S: '0' }, clock);
      const now = clock.seconds();
      const rsPrivate = KeyObject.from(key.privateKey);
      const rs = (input: Buffer): Buffer => sign('sha256', input, rsPrivate);
      const ok = (t: string, who = 'x'): Promise<void> => auth.authenticate(fakeReq(), q(`token=${t}`)).then((id) => assert.equal(id.userId, who));
      const no = (t: string, reason: string): Promise<void> => refusedWith(auth.authenticate(fakeReq(), q(`token=${t}`)), 401, reason);
      const claims = { sub: 'x', exp: now + 60 };
      const good = signRaw({ alg: 'RS256', kid: key.kid }, claims, rs);
      await ok(good);

      // At most 16 KiB: a signed token of exactly 16 384 characters passes, one more is malformed.
      // base64url never ends a segment on 1 character mod 4: a header field of 0–3 characters shifts it.
      const sized = (chars: number): string | null => {
        const signatureChars = 342; // RS256 with a 2048-bit key
        for (let typ = 0; typ < 4; typ++) {
          const header = { alg: 'RS256', kid: key.kid, typ: 't'.repeat(typ) };
          const headerChars = base64url.encode(JSON.stringify(header)).length;
          for (let pad = 11_000; pad < 12_400; pad++) {
            const body = { ...claims, pad: 'p'.repeat(pad) };
            if (headerChars + 1 + base64url.encode(JSON.stringify(body)).length + 1 + signatureChars === chars) return signRaw(header, body, rs);
          }
        }
        return null;
      };
      const atBound = sized(16_384) ?? assert.fail('no token of 16 384 characters');
      await ok(atBound);
      const over = sized(16_385) ?? sized(16_386) ?? assert.fail('no token just over 16 KiB');
      await no(over, 'token malformed');

      // Three segments exactly, and a signature in the base64url alphabet (Node's decoder would skip the rest).
      await no(`${good}.extra`, 'token malformed');
      await no(`${good}==`, 'token malformed');
      await no(`${good.slice(0, -4)}+${good.slice(-3)}`, 'token malformed');

      // A token without a kid names no key, and costs no JWKS fetch (one naming an unknown kid does: no cooldown here).
      server.resetCount();
      await no(signRaw({ alg: 'RS256' }, claims, rs), 'unknown key');
      await no(signRaw({ alg: 'RS256', kid: '' }, claims, rs), 'unknown key');
      assert.equal(server.requests, 0, 'no fetch for a token that names no kid');
      await no(signRaw({ alg: 'RS256', kid: 'nope' }, claims, rs), 'unknown key');
      assert.equal(server.requests, 1, 'an unknown kid is looked up');

      // exp: expired once exp <= now - tolerance; nbf: valid up to now + tolerance.
      await no(signRaw({ alg: 'RS256', kid: key.kid }, { sub: 'x', exp: now - 5 }, rs), 'token expired');
      await no(signRaw({ alg: 'RS256', kid: key.kid }, { sub: 'x', exp: now - 6 }, rs), 'token expired');
      await ok(signRaw({ alg: 'RS256', kid: key.kid }, { sub: 'x', exp: now - 4 }, rs));
      await ok(signRaw({ alg: 'RS256', kid: key.kid }, { ...claims, nbf: now + 5 }, rs));
      await no(signRaw({ alg: 'RS256', kid: key.kid }, { ...claims, nbf: now + 6 }, rs), 'token not yet valid');
      await no(signRaw({ alg: 'RS256', kid: key.kid }, { ...claims, nbf: now + 11 }, rs), 'token not yet valid');

      // A time that JSON can write but is no finite number.
      const header = base64url.encode(JSON.stringify({ alg: 'RS256', kid: key.kid }));
      const infinite = `${header}.${base64url.encode('{"sub":"x","exp":1e400}')}`;
      await no(`${infinite}.${rs(Buffer.from(infinite)).toString('base64url')}`, 'token malformed');

      // sub: up to 256 characters.
      await ok(signRaw({ alg: 'RS256', kid: key.kid }, { ...claims, sub: 's'.repeat(256) }, rs), 's'.repeat(256));
      await no(signRaw({ alg: 'RS256', kid: key.kid }, { ...claims, sub: 's'.repeat(257) }, rs), 'subject missing');
    });

    it('holds a key without an alg member to its own type and curve', async () => {
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const bare = (kid: string, k: KeyObject): TestKey => ({ ...key, kid, jwk: { ...k.export({ format: 'jwk' }), kid } });
      server.publish([key, bare('p384', p384.publicKey), bare('p256', p256.publicKey)]);
      const auth = makeAuth({ JWT_ALGORITHMS: 'RS256,ES256' });
      const claims = { sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 };
      // ES256 names P-256: a P-384 key is refused even though ECDSA over SHA-256 would verify.
      const wrongCurve = signRaw({ alg: 'ES256', kid: 'p384' }, claims, (input) => sign('sha256', input, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${wrongCurve}`)), 401, 'algorithm not allowed');
      // RS256 names RSA: an EC key's (DER) signature is refused even though crypto.verify would take it.
      const wrongType = signRaw({ alg: 'RS256', kid: 'p256' }, claims, (input) => sign('sha256', input, p256.privateKey));
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${wrongType}`)), 401, 'algorithm not allowed');
      // The same P-256 key does verify ES256: the refusals above are about type and curve.
      const right = signRaw({ alg: 'ES256', kid: 'p256' }, claims, (input) => sign('sha256', input, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' }));
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${right}`))).userId, 'x');
    });

    it('verifies PS256 with the salt length RFC 7518 fixes (the digest length), not any salt', async () => {
      const ps = await makeKey('ps', 'PS256');
      server.publish([key, ps]);
      const auth = makeAuth({ JWT_ALGORITHMS: 'PS256' });
      const claims = { sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 };
      const psPrivate = KeyObject.from(ps.privateKey);
      const withSalt = (saltLength: number): string =>
        signRaw({ alg: 'PS256', kid: 'ps' }, claims, (input) => sign('sha256', input, { key: psPrivate, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }));
      assert.equal((await auth.authenticate(fakeReq(), q(`token=${withSalt(32)}`))).userId, 'x');
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${withSalt(0)}`)), 401, 'signature invalid');
      await refusedWith(auth.authenticate(fakeReq(), q(`token=${withSalt(64)}`)), 401, 'signature invalid');
    });

    it('refuses malformed tokens', async () => {
      const auth = makeAuth();
      for (const t of ['abc', 'a.b.c', 'a.b.c.d.e', `${'x'.repeat(20000)}.a.b`, '..']) {
        await refusedWith(auth.authenticate(fakeReq(), q(`token=${encodeURIComponent(t)}`)), 401, 'token malformed');
      }
    });

    it('never puts the token or its claims in refusals or logs', async () => {
      const auth = makeAuth({ JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'aud-1' });
      logs.lines.length = 0;
      const secretSub = 'user_SECRET_SUBJECT_42';
      const tokens = [
        await mintToken(key, { sub: secretSub, iss: 'https://issuer.test', aud: 'aud-1', exp: 1 }),
        await mintToken(key, { sub: secretSub, iss: 'https://wrong.test', aud: 'aud-1' }),
        await mintToken(key, { sub: secretSub, iss: 'https://issuer.test', aud: 'aud-2' }),
        await mintToken(other, { sub: secretSub }, { kid: key.kid }),
        await mintToken(other, { sub: secretSub }),
      ];
      for (const t of tokens) {
        const err = await auth.authenticate(fakeReq(), q(`token=${t}`)).then(
          () => assert.fail('accepted'),
          (e: unknown) => e as Refusal,
        );
        const shown = `${err.message} ${err.reason} ${err.stack ?? ''} ${JSON.stringify(err)}`;
        assert.ok(!shown.includes(secretSub), 'claims leaked into the refusal');
        assert.ok(!shown.includes(t.split('.')[1]), 'token leaked into the refusal');
      }
      const logged = logs.lines.join('\n');
      for (const t of tokens) assert.ok(!logged.includes(t.split('.')[1]));
      assert.ok(!logged.includes(secretSub));
    });
  });

  describe('auth off', () => {
    it('answers anonymous for everything while CLERK_JWKS_URL is empty, and warns once at startup', async () => {
      const config = parseConfig({});
      const clock = new ManualClock();
      const auth = new AuthService(config, new JwksService(config, clock), clock);
      assert.equal(auth.enabled, false);
      logs.lines.length = 0;
      auth.onModuleInit();
      assert.equal(logs.lines.filter((l) => l.includes('authentication is OFF')).length, 1);
      assert.deepEqual(await auth.authenticate(fakeReq(), q()), { userId: 'anonymous' });
      assert.deepEqual(await auth.authenticate(fakeReq({ authorization: 'Bearer garbage' }), q('token=x')), { userId: 'anonymous' });
      assert.equal(makeAuth().enabled, true);
    });
  });
});
