/**
 * Real authentication for the bench: an RS256 key pair, a JWKS served over
 * loopback HTTP (what CLERK_JWKS_URL points at), and signed tokens with `sub`
 * and `exp`, the way the issuer would mint them.
 */
import { createServer } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

/** Starts the JWKS server; `mint(sub, jti?)` signs a token valid for two hours. */
export async function startAuth() {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`;
  return {
    jwksUrl: url,
    get fetches() {
      return fetches;
    },
    mint: (sub, jti) =>
      new SignJWT(jti ? { jti } : {})
        .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'JWT' })
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(privateKey),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
