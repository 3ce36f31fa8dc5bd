/**
 * Helpers for the tunnel tests: a free raw-port range, HTTP requests with a
 * chosen Host, a local HTTP service, and a raw protocol client that speaks v1
 * by hand (to check the wire format and to misbehave on purpose).
 */
import { createServer as createHttpServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { WebSocket } from 'ws';

export const TUNNEL_DOMAIN = 'tunnel.test';

/** Finds `count` consecutive ports that are free on 127.0.0.1 right now. */
export async function findFreePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (40000 - count));
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portIsFree(p);
    if (ok) return base;
  }
  throw new Error('no free port range found');
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Env for a tunnel-enabled app: domain `tunnel.test`, http URLs, raw ports on loopback in a free range. */
export async function tunnelEnv(extra: Record<string, string> = {}, portCount = 8): Promise<Record<string, string>> {
  const min = await findFreePortRange(portCount);
  return {
    TUNNEL_DOMAIN: TUNNEL_DOMAIN,
    TUNNEL_PUBLIC_SCHEME: 'http',
    TUNNEL_TCP_ENABLED: 'true',
    TUNNEL_BIND_HOST: '127.0.0.1',
    TUNNEL_PORT_MIN: String(min),
    TUNNEL_PORT_MAX: String(min + portCount - 1),
    MAX_CONNS_PER_IP: '100',
    MAX_CONNS_PER_USER: '100',
    MAX_TUNNELS_PER_USER: '50',
    SHUTDOWN_TIMEOUT_MS: '0',
    ...extra,
  };
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: Buffer;
}

export interface HttpOptions {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: Buffer | string;
  /** Send the body with chunked encoding (no Content-Length). */
  readonly chunked?: boolean;
}

/** One HTTP request to the app on 127.0.0.1 with the given Host. */
export function httpTo(port: number, host: string, opts: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { host, ...opts.headers };
    if (opts.body !== undefined && !opts.chunked) headers['content-length'] = String(Buffer.byteLength(opts.body));
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined && opts.chunked) {
      const b = Buffer.from(opts.body);
      const half = Math.floor(b.length / 2);
      req.write(b.subarray(0, half));
      req.end(b.subarray(half));
    } else {
      req.end(opts.body);
    }
  });
}

/** The subdomain label of a tunnel URL. */
export function subdomainOf(tunnelUrl: string): string {
  return new URL(tunnelUrl).hostname.split('.')[0];
}

/** A local HTTP service on 127.0.0.1; `requests` counts what reached it. */
export interface HttpService {
  readonly port: number;
  readonly target: string;
  requests: number;
  close(): Promise<void>;
}

export async function startHttpService(handler: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<HttpService> {
  let self: HttpService;
  const server: Server = createHttpServer((req, res) => {
    self.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  self = {
    port,
    target: `127.0.0.1:${port}`,
    requests: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}

/** One message a raw client received. */
export interface RawMessage {
  readonly data: Buffer;
  readonly isBinary: boolean;
}

/**
 * A tunnel client speaking v1 by hand: keeps every message it receives, lets a
 * test wait for control messages by type and send anything it likes.
 */
export class RawTunnel {
  readonly received: RawMessage[] = [];
  private waiters: { pred: (m: RawMessage) => boolean; resolve: (m: RawMessage) => void }[] = [];
  private readonly consumed = new Set<RawMessage>();
  private readonly dataBytes = new Map<string, number>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const m = { data, isBinary };
      this.received.push(m);
      if (isBinary && !isControl(m) && data.length >= 4) {
        const id = data.subarray(4, 4 + data.readUInt32BE(0)).toString();
        this.dataBytes.set(id, (this.dataBytes.get(id) ?? 0) + data.length - 4 - Buffer.byteLength(id));
      }
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(m)) {
          w.resolve(m);
          return false;
        }
        return true;
      });
    });
  }

  static async open(wsUrl: string, query = ''): Promise<{ tunnel: RawTunnel; ready: Record<string, unknown>; readyRaw: RawMessage }> {
    // Listening from the start: tunnel_ready may arrive in the same read as the handshake.
    const ws = new WebSocket(`${wsUrl}/tunnel${query}`, { perMessageDeflate: false });
    const tunnel = new RawTunnel(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    const readyRaw = await tunnel.next('tunnel_ready');
    return { tunnel, ready: JSON.parse(readyRaw.data.toString('utf8')) as Record<string, unknown>, readyRaw };
  }

  /** Resolves with the next control message of `type` not yet consumed (by arrival order). */
  next(type: string, timeoutMs = 5000): Promise<RawMessage> {
    const pred = (m: RawMessage): boolean => isControl(m) && (JSON.parse(m.data.toString('utf8')) as { type: string }).type === type;
    for (const m of this.received) {
      if (pred(m) && !this.consumed.has(m)) {
        this.consumed.add(m);
        return Promise.resolve(m);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred: (m) => pred(m) && !this.consumed.has(m),
        resolve: (m) => {
          clearTimeout(timer);
          this.consumed.add(m);
          resolve(m);
        },
      });
    });
  }

  /** The next control message of `type`, parsed. */
  async nextJson<T = Record<string, unknown>>(type: string, timeoutMs?: number): Promise<T> {
    const m = await this.next(type, timeoutMs);
    return JSON.parse(m.data.toString('utf8')) as T;
  }

  send(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  sendJson(message: unknown, binary = false): void {
    const text = JSON.stringify(message);
    this.send(binary ? Buffer.from(text) : text, binary);
  }

  /** Payload bytes received so far for `connId`. */
  bytesFor(connId: string): number {
    return this.dataBytes.get(connId) ?? 0;
  }

  /** Data frames received for `connId`, concatenated. */
  dataFor(connId: string): Buffer {
    const parts: Buffer[] = [];
    for (const m of this.received) {
      if (!m.isBinary || isControl(m)) continue;
      const len = m.data.readUInt32BE(0);
      if (m.data.subarray(4, 4 + len).toString() === connId) parts.push(m.data.subarray(4 + len));
    }
    return Buffer.concat(parts);
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }
}

/** Whether a received message is a control message (text, or binary JSON). */
export function isControl(m: RawMessage): boolean {
  return !m.isBinary || m.data[0] === 0x7b;
}

/** A v1 data frame. */
export function dataFrame(connId: string, payload: Buffer): Buffer {
  const id = Buffer.from(connId);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(id.length);
  return Buffer.concat([len, id, payload]);
}

/** Re-exported so the tunnel specs keep importing it from here. */
export { waitFor } from './wait.js';
