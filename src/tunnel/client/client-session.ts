import { ChurnMap } from '../../common/churn-map.js';
import {
  base64ToBytes,
  decodeFrame,
  encodeData,
  encodeHttpResponse,
  encodeTcpClose,
  utf8ToBytes,
} from '../protocol/v1.js';
import { MAX_CLIENT_STREAMS } from '../protocol/v2-mux.js';
import { localRefusal } from './local-refusal.js';

/**
 * The client half of tunnel protocol v1, free of Node APIs (a browser port
 * reuses it with its own transport and local services, e.g. SSH channels).
 */

/** An HTTP request the proxy forwarded. */
export interface ForwardedHttpRequest {
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | null;
}

/** The local service's answer. */
export interface LocalHttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: Uint8Array | null;
}

/** The tunnel's end of one raw TCP connection, handed to the local side. */
export interface TunnelConnection {
  readonly connId: string;
  /** Payload towards the proxy. */
  send(payload: Uint8Array): void;
  /** The local side is done: `tcp_close` (once). */
  close(): void;
}

/** The local end of one raw TCP connection. */
export interface LocalConnection {
  write(payload: Uint8Array): void;
  /** The proxy closed the connection. */
  close(): void;
}

/** Where forwarded traffic goes on the client's side. */
export interface LocalServices {
  http(request: ForwardedHttpRequest): Promise<LocalHttpResponse>;
  tcp(connection: TunnelConnection): LocalConnection;
}

/** The WebSocket as the session needs it. */
export interface ClientTransport {
  send(frame: string | Uint8Array): void;
}

/** What `tunnel_ready` announced. */
export interface TunnelReady {
  readonly tunnelUrl: string;
  readonly rawPort: number;
  /** Protocol version the proxy speaks on this tunnel (1 when `tunnel_ready` has no `version`). */
  readonly version: number;
}

export interface ClientSessionOptions {
  /** Send control messages as binary frames (the proxy accepts both). */
  readonly controlAsBinary?: boolean;
}

const encoder = new TextEncoder();

/**
 * Decodes what the proxy sends and drives the local services: answers
 * `http_request`s, opens and closes local connections on `tcp_open` /
 * `tcp_close`, and moves TCP payload both ways.
 */
export class TunnelClientSession {
  /** Resolves on `tunnel_ready`. */
  readonly ready: Promise<TunnelReady>;
  private resolveReady!: (r: TunnelReady) => void;
  private rejectReady!: (err: Error) => void;
  private readonly connections = new ChurnMap<string, LocalConnection>();
  /** HTTP requests handed to the local service and not answered yet. */
  private pendingHttp = 0;
  private closed = false;

  constructor(
    private readonly transport: ClientTransport,
    private readonly services: LocalServices,
    private readonly options: ClientSessionOptions = {},
  ) {
    this.ready = new Promise<TunnelReady>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
  }

  /** Open raw TCP connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** HTTP requests the local service has not answered yet. */
  get pendingHttpCount(): number {
    return this.pendingHttp;
  }

  /**
   * Each raw connection and each request in flight is a local connection on
   * the user's machine: as v2 bounds its streams (MAX_CLIENT_STREAMS), a
   * broken or hostile proxy gets no more than that many at once.
   */
  private full(): boolean {
    return this.connections.size + this.pendingHttp >= MAX_CLIENT_STREAMS;
  }

  /** Feeds one WebSocket message. */
  receive(data: Uint8Array | string, binary: boolean): void {
    const frame = decodeFrame(data, binary);
    if (!frame) return;
    if (frame.kind === 'data') {
      this.connections.get(frame.connId)?.write(frame.payload);
      return;
    }
    const m = frame.message;
    switch (m.type) {
      case 'tunnel_ready':
        this.resolveReady({
          tunnelUrl: typeof m.tunnelUrl === 'string' ? m.tunnelUrl : '',
          rawPort: typeof m.rawPort === 'number' ? m.rawPort : 0,
          version: typeof m.version === 'number' ? m.version : 1,
        });
        return;
      case 'http_request':
        this.onHttpRequest(m);
        return;
      case 'tcp_open':
        if (typeof m.connId === 'string') this.onTcpOpen(m.connId);
        return;
      case 'tcp_close':
        if (typeof m.connId === 'string') {
          const local = this.connections.get(m.connId);
          this.connections.delete(m.connId);
          local?.close();
        }
        return;
    }
  }

  /** The WebSocket is gone: every local connection is closed. */
  transportClosed(code: number, reason: string): void {
    this.closed = true;
    this.rejectReady(new Error(`tunnel closed before it was ready: ${code} ${reason}`));
    for (const local of this.connections.values()) local.close();
    this.connections.clear();
  }

  private sendControl(json: string): void {
    if (this.closed) return;
    this.transport.send(this.options.controlAsBinary ? encoder.encode(json) : json);
  }

  private onHttpRequest(m: Record<string, unknown>): void {
    if (typeof m.id !== 'string') return;
    const id = m.id;
    let body: Uint8Array | null = null;
    if (typeof m.body === 'string') body = m.bodyEncoding === 'base64' ? base64ToBytes(m.body) : utf8ToBytes(m.body);
    if (typeof m.body === 'string' && body === null) {
      // Without its body the local service would wait for the bytes its Content-Length promises.
      return this.answerPlain(id, 400, 'request body is not base64');
    }
    const headers: Record<string, string> = {};
    if (typeof m.headers === 'object' && m.headers !== null) {
      for (const [k, v] of Object.entries(m.headers as Record<string, unknown>)) if (typeof v === 'string') headers[k] = v;
    }
    if (this.full()) return this.answerPlain(id, 503, 'tunnel client busy: too many requests in flight');
    const path = typeof m.path === 'string' ? m.path : '/';
    const method = typeof m.method === 'string' ? m.method : 'GET';
    const refusal = localRefusal('http', method, path);
    if (refusal) return this.answerPlain(id, ...refusal);
    const request: ForwardedHttpRequest = {
      id,
      method,
      path,
      headers,
      body,
    };
    this.pendingHttp++;
    this.services.http(request).then(
      (res) => {
        this.pendingHttp--;
        this.sendControl(encodeHttpResponse(id, res.status, res.headers, res.body));
      },
      (err: unknown) => {
        this.pendingHttp--;
        this.answerPlain(id, 502, `local service failed: ${String(err)}`);
      },
    );
  }

  /** Answers request `id` itself with a short plain-text reason. */
  private answerPlain(id: string, status: number, reason: string): void {
    this.sendControl(encodeHttpResponse(id, status, { 'content-type': 'text/plain; charset=utf-8' }, utf8ToBytes(reason + '\n')));
  }

  private onTcpOpen(connId: string): void {
    if (this.connections.has(connId)) return;
    if (this.full()) {
      this.sendControl(encodeTcpClose(connId));
      return;
    }
    const handle: TunnelConnection = {
      connId,
      send: (payload) => {
        if (this.connections.has(connId) && !this.closed && payload.length > 0) this.transport.send(encodeData(connId, payload));
      },
      close: () => {
        if (this.connections.delete(connId)) this.sendControl(encodeTcpClose(connId));
      },
    };
    // Registered before the local side opens, so a local failure during `tcp()` can already close it.
    const pending: LocalConnection = { write: () => undefined, close: () => undefined };
    this.connections.set(connId, pending);
    const local = this.services.tcp(handle);
    if (this.connections.get(connId) === pending) this.connections.set(connId, local);
    else local.close();
  }
}
