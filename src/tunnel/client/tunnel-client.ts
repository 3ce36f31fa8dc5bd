import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import {
  TunnelClientSession,
  type ForwardedHttpRequest,
  type LocalConnection,
  type LocalHttpResponse,
  type TunnelConnection,
  type TunnelReady,
} from './client-session.js';
import { V2ClientSession } from '../v2/client-session.js';
import { FrameSender } from '../core/frame-sender.js';
import { nodeLocalServices, SWITCHED_UNASKED } from '../v2/node-services.js';
import { T as V2_FRAME, V2_MAX_FRAME_BYTES } from '../protocol/v2.js';
import { maskingFor } from '../../common/frame-masking.js';
import { readRefusalBody } from '../../common/refusal-body.js';
import { V1_CLIENT_MAX_RESPONSE_BODY, v1MaxMessageBytes } from '../v1/v1-limits.js';
import { setMaxPayload, watchOwnProtocolCloses, type OwnProtocolClose } from '../../common/client-message-limit.js';
import { CLIENT_LIVENESS, watchLiveness, type LivenessOptions } from '../../cli/liveness.js';

export type { ForwardedHttpRequest, LocalHttpResponse, TunnelReady } from './client-session.js';
export { TunnelClientSession } from './client-session.js';
export { V2ClientSession, V2ClientStream, type V2LocalServices } from '../v2/client-session.js';

/** A local service: `host:port`, or a port on 127.0.0.1. */
export interface LocalTarget {
  readonly host: string;
  readonly port: number;
}

export interface TunnelClientOptions {
  /** `ws(s)://host/tunnel`, query allowed. */
  readonly proxy: string;
  /** Bearer token (sent in `Authorization`, never in the URL). */
  readonly token?: string;
  /** The local HTTP service subdomain requests go to. Without it they get 502. */
  readonly to?: LocalTarget | string;
  /** The local TCP service raw-port connections go to. Without it they are closed. */
  readonly tcpTo?: LocalTarget | string;
  /**
   * Tunnel protocol version: 2 (streamed bodies, WebSockets, credit per
   * stream) or 1 (the seed protocol; the default of this class, so existing
   * programs see the same behaviour — `wsproxy-tunnel` defaults to 2). A proxy
   * that only speaks v1 answers a v2 request with v1, and the client follows.
   */
  readonly protocol?: 1 | 2;
  /** v1: ask the proxy for control messages in binary frames (`control=binary`). v2 is binary anyway. */
  readonly control?: 'text' | 'binary';
  /** v2: credit granted to the proxy per stream, in bytes (default 1 MiB). */
  readonly window?: number;
  /** Extra handshake headers (for example `Origin`). */
  readonly headers?: Record<string, string>;
  /**
   * v1 only: largest local response body forwarded; larger answers 502. v1 carries a
   * body base64-encoded inside one WebSocket message, which the proxy's
   * `/tunnel` endpoint accepts up to the larger of `TUNNEL_MAX_BODY_BYTES` and
   * this option's default (10 MiB) of body.
   */
  readonly maxResponseBodyBytes?: number;
  /**
   * v1 only: the largest request body the proxy forwards, its
   * `TUNNEL_MAX_BODY_BYTES` (default 10 MiB, the proxy's default). A v1
   * `http_request` carries its body whole, base64-encoded, in one message; a
   * message from the proxy over what such a body takes closes the tunnel with
   * 1009. Raise it for a proxy with a larger `TUNNEL_MAX_BODY_BYTES`. v2 takes
   * messages of one frame at most (`V2_MAX_FRAME_BYTES`, 1 MiB and 6 bytes)
   * whatever this says.
   */
  readonly maxRequestBodyBytes?: number;
  /** v1: how long one local TCP service may hold the tunnel paused by not reading before its connection is dropped (default 10 s). */
  readonly localStallMs?: number;
  /**
   * v1: how long the local HTTP service may stay silent on a request before it
   * is dropped and answered 504 (default 60 s, the proxy's default
   * `TUNNEL_RESPONSE_TIMEOUT_MS`). v1 cannot cancel a request, so without it
   * every request the proxy gave up on would hold a local connection.
   */
  readonly localResponseTimeoutMs?: number;
  /** Time the proxy has to complete the handshake and send `tunnel_ready` (default 30 s); `connect` rejects beyond. */
  readonly readyTimeoutMs?: number;
  /**
   * Pings the proxy and terminates the tunnel (1006) once nothing has been
   * heard for `deadAfterMs` (default: a ping every 10 s, dead after 30 s, as
   * `wsproxy-connect`); `false`: never. A path that dies without a FIN or RST
   * closes nothing by itself, and the tunnel would wait for requests forever.
   */
  readonly liveness?: LivenessOptions | false;
}

/** How the tunnel WebSocket closed. */
export interface TunnelClosed {
  /** The close code; when this client closed it for the proxy's frames (1009: a message over the limit), that code. */
  readonly code: number;
  readonly reason: string;
}

/** The handshake was refused with an HTTP status. */
export class TunnelRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`tunnel refused: HTTP ${status} ${body}`);
    this.name = 'TunnelRefusedError';
  }
}

const HIGH_WATER = 1024 * 1024;
/** v1: how long one local TCP service may hold the tunnel WebSocket paused by not reading (see forwardTcp). */
const LOCAL_STALL_MS = 10_000;
const LOCAL_RESPONSE_TIMEOUT_MS = 60_000;
const DEFAULT_V2_WINDOW = 1024 * 1024;
const DEFAULT_READY_TIMEOUT_MS = 30_000;
/** The proxy's default `TUNNEL_MAX_BODY_BYTES`. */
const DEFAULT_PROXY_MAX_BODY_BYTES = 10 * 1024 * 1024;

/**
 * The largest message a v1 proxy sends: an `http_request` with a whole body of
 * `maxRequestBodyBytes`, base64, and room for its head (the same bound the proxy
 * puts on a v1 client's `http_response`).
 */
export function v1ClientMaxMessageBytes(maxRequestBodyBytes = DEFAULT_PROXY_MAX_BODY_BYTES): number {
  // ws reads a maxPayload of 0 (what NaN would become) as no limit at all.
  if (!Number.isSafeInteger(maxRequestBodyBytes) || maxRequestBodyBytes < 0) throw new RangeError(`maxRequestBodyBytes must be a byte count, not ${maxRequestBodyBytes}`);
  return v1MaxMessageBytes(maxRequestBodyBytes);
}

/** What the client needs of a protocol session. */
interface ProtocolSession {
  readonly ready: Promise<TunnelReady>;
  transportClosed(code: number, reason: string): void;
}

/** Parses `host:port`, `[v6]:port` or a bare port (127.0.0.1). */
export function parseTarget(target: LocalTarget | string): LocalTarget {
  if (typeof target !== 'string') return target;
  const bare = /^\d{1,5}$/.exec(target);
  if (bare) {
    const port = Number(target);
    if (port < 1 || port > 65535) throw new Error(`invalid port "${target}"`);
    return { host: '127.0.0.1', port };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(target);
  if (!m) throw new Error(`invalid target "${target}" (expected host:port)`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`invalid port in "${target}"`);
  return { host: m[1] ?? m[2], port };
}

/**
 * The reference tunnel client for Node: registers at a wsproxy `/tunnel`
 * endpoint and forwards subdomain HTTP requests to a local HTTP service and
 * raw-port connections to a local TCP service — what `wsproxy-tunnel` runs.
 * With `protocol: 2` bodies stream both ways, WebSocket upgrades reach the
 * local HTTP service, and every stream has its own credit.
 *
 * ```ts
 * const tunnel = await TunnelClient.connect({ proxy: 'wss://proxy.example.com/tunnel', token, to: '127.0.0.1:3000', protocol: 2 });
 * console.log(tunnel.tunnelUrl, tunnel.rawPort);
 * await tunnel.close();
 * ```
 */
export class TunnelClient {
  /** Resolves when the tunnel WebSocket has closed, for any reason. */
  readonly closed: Promise<TunnelClosed>;
  private v1: TunnelClientSession | null = null;
  private v2: V2ClientSession | null = null;
  private readonly makeV1: () => TunnelClientSession;
  private readonly makeV2: () => V2ClientSession;
  private readonly readyPromise: Promise<TunnelReady>;
  private settleReady!: { resolve: (r: TunnelReady) => void; reject: (err: Error) => void };
  private ready: TunnelReady | null = null;
  private readonly drainWaiters: (() => void)[] = [];
  private pausedLocal = 0;
  private readonly sender: FrameSender;

  private readonly localStallMs: number;
  /** What `ws` closed the tunnel with for the proxy's frames (a message over the limit: 1009). */
  private readonly ownProtocolClose: () => OwnProtocolClose | null;

  private constructor(
    readonly ws: WebSocket,
    options: TunnelClientOptions,
  ) {
    this.localStallMs = options.localStallMs ?? LOCAL_STALL_MS;
    this.sender = new FrameSender(ws, HIGH_WATER, () => this.onDrained());
    const http = options.to === undefined ? null : parseTarget(options.to);
    const tcp = options.tcpTo === undefined ? null : parseTarget(options.tcpTo);
    const maxBody = options.maxResponseBodyBytes ?? V1_CLIENT_MAX_RESPONSE_BODY;
    const responseTimeoutMs = options.localResponseTimeoutMs ?? LOCAL_RESPONSE_TIMEOUT_MS;
    this.makeV1 = () =>
      new TunnelClientSession(
        { send: (frame) => this.sender.send(frame) },
        {
          http: (req) => (http ? forwardHttp(http, req, maxBody, responseTimeoutMs) : Promise.resolve(plain(502, 'no local HTTP service'))),
          tcp: (conn) => (tcp ? this.forwardTcp(tcp, conn) : closedConnection(conn)),
        },
      );
    this.makeV2 = () =>
      new V2ClientSession(
        { send: (frame) => this.sender.send(frame), transportReady: () => this.sender.ready, close: (code, reason) => void this.close(code, reason) },
        nodeLocalServices(http, tcp),
        { window: options.window ?? DEFAULT_V2_WINDOW },
      );
    this.readyPromise = new Promise<TunnelReady>((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.readyPromise.catch(() => undefined);
    if (options.protocol !== 2) this.use(this.makeV1());
    this.ownProtocolClose = watchOwnProtocolCloses(ws);
    this.closed = new Promise<TunnelClosed>((resolve) => {
      ws.once('close', (wsCode: number, wsReason: Buffer) => {
        // A proxy that never answers our 1009 leaves the close event at 1006: report what broke.
        const own = wsCode === 1006 ? this.ownProtocolClose() : null;
        const code = own?.code ?? wsCode;
        const reason = own?.reason ?? wsReason.toString();
        const session: ProtocolSession | null = this.v2 ?? this.v1;
        if (session) session.transportClosed(code, reason);
        else this.settleReady.reject(new Error(`tunnel closed before it was ready: ${code} ${reason}`));
        for (const w of this.drainWaiters.splice(0)) w();
        resolve({ code, reason });
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
  }

  private use(session: TunnelClientSession | V2ClientSession): void {
    if (session instanceof V2ClientSession) this.v2 = session;
    else this.v1 = session;
    session.ready.then(this.settleReady.resolve, this.settleReady.reject);
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (!this.v1 && !this.v2) {
      // The first message tells the version: a v2 READY frame, or v1's JSON tunnel_ready from a proxy that speaks only v1.
      const v2 = isBinary && data[0] === V2_FRAME.READY;
      // Asked for v2, the connection took v1's largest message until the proxy said which it speaks.
      if (v2) setMaxPayload(this.ws, V2_MAX_FRAME_BYTES);
      this.use(v2 ? this.makeV2() : this.makeV1());
    }
    if (this.v2) {
      if (isBinary) this.v2.receive(data);
    } else this.v1!.receive(data, isBinary);
  }

  /** Opens the tunnel; resolves once the proxy sent `tunnel_ready`. Rejects with `TunnelRefusedError` on a refused handshake. */
  static connect(options: TunnelClientOptions): Promise<TunnelClient> {
    const url = new URL(options.proxy);
    if (options.protocol === 2) url.searchParams.set('v', '2');
    else url.searchParams.delete('v');
    if (options.control === 'binary') url.searchParams.set('control', 'binary');
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    // Not ws's 100 MiB: a v1 proxy's largest message, or (asked for v2) the larger of that and a v2 frame
    // until the first message tells the version (a proxy that speaks only v1 answers v2 with v1).
    const v1Max = v1ClientMaxMessageBytes(options.maxRequestBodyBytes);
    const maxPayload = options.protocol === 2 ? Math.max(v1Max, V2_MAX_FRAME_BYTES) : v1Max;
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: readyTimeoutMs, maxPayload, ...maskingFor(url) });
    const client = new TunnelClient(ws, options);
    if (options.liveness !== false) watchLiveness(ws, options.liveness ?? CLIENT_LIVENESS);
    const settled = new Promise<TunnelClient>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        readRefusalBody(res, (body) => {
          reject(new TunnelRefusedError(res.statusCode ?? 0, body));
          // With this listener attached, ws leaves aborting the handshake to us.
          ws.terminate();
        });
      });
      ws.on('error', (err) => reject(err));
      client.readyPromise.then(
        (ready) => {
          client.ready = ready;
          resolve(client);
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
    // A proxy that accepts the handshake but never sends tunnel_ready.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no tunnel_ready within ${readyTimeoutMs} ms`));
        ws.terminate();
      }, readyTimeoutMs);
    });
    return Promise.race([settled, deadline]).finally(() => clearTimeout(timer));
  }

  /** `https://<sub>.<domain>`, or empty when the proxy has no tunnel domain. */
  get tunnelUrl(): string {
    return this.ready?.tunnelUrl ?? '';
  }

  /** The raw TCP port, or 0. */
  get rawPort(): number {
    return this.ready?.rawPort ?? 0;
  }

  /** The protocol version spoken on this tunnel (0 before it is ready). */
  get protocol(): number {
    return this.ready?.version ?? 0;
  }

  /** The subdomain label of `tunnelUrl`, or empty (also when what the proxy sent is no URL). */
  get subdomain(): string {
    if (!this.tunnelUrl) return '';
    try {
      return new URL(this.tunnelUrl).hostname.split('.')[0] ?? '';
    } catch {
      return '';
    }
  }

  /** Closes the tunnel (1000) and resolves when it has closed. */
  close(code = 1000, reason = 'client closed'): Promise<TunnelClosed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    return this.closed;
  }

  private onDrained(): void {
    for (const w of this.drainWaiters.splice(0)) w();
    this.v2?.transportDrained();
  }

  private forwardTcp(target: LocalTarget, conn: TunnelConnection): LocalConnection {
    const socket = connect({ host: target.host, port: target.port, noDelay: true });
    let blockingWs = false;
    let stall: NodeJS.Timeout | null = null;
    const unblock = (): void => {
      if (!blockingWs) return;
      blockingWs = false;
      if (stall) clearTimeout(stall);
      stall = null;
      if (--this.pausedLocal === 0) this.ws.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      conn.send(chunk);
      if (!this.sender.ready && !socket.isPaused()) {
        socket.pause();
        this.drainWaiters.push(() => socket.resume());
      }
    });
    socket.on('drain', unblock);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      unblock();
      conn.close();
    });
    return {
      write: (payload) => {
        if (socket.destroyed) return;
        if (!socket.write(payload) && !blockingWs) {
          blockingWs = true;
          if (this.pausedLocal++ === 0) this.ws.pause();
          // v1 has one reader for every connection, so this holds them all, and
          // the proxy's pings with them: a service that stays this long without
          // reading loses its connection, and the tunnel goes on.
          stall = setTimeout(() => socket.destroy(), this.localStallMs);
          stall.unref();
        }
      },
      close: () => socket.end(),
    };
  }
}

function closedConnection(conn: TunnelConnection): LocalConnection {
  queueMicrotask(() => conn.close());
  return { write: () => undefined, close: () => undefined };
}

function plain(status: number, text: string): LocalHttpResponse {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: new TextEncoder().encode(text + '\n') };
}

/** Sends a forwarded request to the local service and collects the whole response (v1 carries whole bodies). */
function forwardHttp(target: LocalTarget, req: ForwardedHttpRequest, maxBody: number, timeoutMs: number): Promise<LocalHttpResponse> {
  return new Promise((resolve) => {
    // v1 bodies arrive whole: the length is the body's own, whatever the message declared (a shorter
    // declared length would leave the rest to be read as a second request, a longer one hang the service).
    const headers: Record<string, string> = {};
    let declared = false;
    for (const [name, value] of Object.entries(req.headers)) {
      const lower = name.toLowerCase();
      if (lower === 'content-length' || lower === 'transfer-encoding') declared = true;
      else headers[name] = value;
    }
    if (req.body || declared) headers['content-length'] = String(req.body?.length ?? 0);
    const r = httpRequest({ host: target.host, port: target.port, method: req.method, path: req.path, headers });
    r.setTimeout(timeoutMs, () => {
      r.destroy();
      resolve(plain(504, 'local service timed out'));
    });
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          res.destroy();
          resolve(plain(502, 'local response too large for the tunnel'));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: definedHeaders(res.headers), body: Buffer.concat(chunks) }));
      res.on('error', () => resolve(plain(502, 'local service failed')));
    });
    r.on('error', () => resolve(plain(502, 'local service unreachable')));
    // A 101 to a request that asked for no upgrade: Node would drop it with neither a response nor an error.
    r.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve(plain(502, SWITCHED_UNASKED));
    });
    r.end(req.body ?? undefined);
  });
}

function definedHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = v;
  return out;
}
