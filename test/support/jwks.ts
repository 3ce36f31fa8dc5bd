/**
 * Test fixtures for authentication: RSA signing keys made in the test, a real
 * JWKS HTTP server on loopback that counts its requests, and token minting.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export interface TestKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public JWK as the JWKS publishes it (`kid`, `alg`, `use` set). */
  readonly jwk: JWK;
  /** The public key as SPKI PEM text (for the HS256 key-confusion attack). */
  readonly spkiPem: string;
}

/** A fresh key pair (RS256 unless `alg` says otherwise). */
export async function makeKey(kid: string = randomUUID(), alg = 'RS256', options: { modulusLength?: number; crv?: string } = {}): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, privateKey, publicKey, jwk, spkiPem: await exportSPKI(publicKey) };
}

export interface MintOptions {
  /** Seconds since the epoch used for `iat` and as the base of `expiresIn`; default now. */
  readonly now?: number;
  /** Seconds until `exp`; default 60. `null` leaves `exp` out. */
  readonly expiresIn?: number | null;
  /** `kid` header; default the key's. */
  readonly kid?: string;
  readonly alg?: string;
}

/** Signs an RS256 JWT; `claims` default to `{ sub: 'user_1' }` merged with what is given. */
export async function mintToken(key: TestKey, claims: JWTPayload = {}, opts: MintOptions = {}): Promise<string> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const body: JWTPayload = { sub: 'user_1', iat: now, ...claims };
  if (opts.expiresIn !== null && body.exp === undefined) body.exp = now + (opts.expiresIn ?? 60);
  return new SignJWT(body).setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? key.kid }).sign(key.privateKey);
}

/** What the JWKS server answers next. */
export type JwksReply =
  | { readonly kind: 'keys'; readonly keys: JWK[] }
  | { readonly kind: 'raw'; readonly status: number; readonly body: string }
  | { readonly kind: 'hang' };

/** A JWKS endpoint on 127.0.0.1 that counts requests. */
export class JwksServer {
  /** Requests received since start (or the last `resetCount`). */
  requests = 0;
  private reply: JwksReply = { kind: 'keys', keys: [] };
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(keys: TestKey[] = []): Promise<JwksServer> {
    let self: JwksServer | undefined;
    const server = createServer((req, res) => self!.handle(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    self = new JwksServer(server, `http://127.0.0.1:${port}/.well-known/jwks.json`);
    self.publish(keys);
    return self;
  }

  /** Publishes exactly these keys. */
  publish(keys: TestKey[]): void {
    this.reply = { kind: 'keys', keys: keys.map((k) => k.jwk) };
  }

  /** Answers every request with this status and body. */
  answerRaw(status: number, body: string): void {
    this.reply = { kind: 'raw', status, body };
  }

  /** Accepts requests and never answers them. */
  hang(): void {
    this.reply = { kind: 'hang' };
  }

  resetCount(): void {
    this.requests = 0;
  }

  private handle(res: ServerResponse): void {
    this.requests++;
    const r = this.reply;
    if (r.kind === 'hang') {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const [status, body] = r.kind === 'keys' ? [200, JSON.stringify({ keys: r.keys })] : [r.status, r.body];
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** Stops listening and drops every open connection (keep-alive included). */
  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

/** A loopback URL nothing listens on: a port taken and released. */
export async function unreachableJwksUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/.well-known/jwks.json`;
}
