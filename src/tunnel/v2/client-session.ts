import { ChurnMap } from '../../common/churn-map.js';
import type { TunnelReady } from '../client/client-session.js';
import { localRefusal } from '../client/local-refusal.js';
import { V2Mux } from '../protocol/v2-mux.js';
import { R, type V2Headers, type V2StreamKind } from '../protocol/v2.js';

/**
 * The client half of tunnel protocol v2, free of Node APIs: a browser reuses
 * it with its own WebSocket and local services (e.g. SSH channels); the Node
 * reference client plugs in sockets (`node-services.ts`).
 */

/** What the proxy forwarded on an http or websocket stream. */
export interface V2ForwardedRequest {
  readonly method: string;
  /** Origin-form target: path and query. */
  readonly path: string;
  /** Header fields in order, names lowercase, repeated headers once per value. */
  readonly headers: V2Headers;
  /** No body follows (`onend` comes right after the stream is handed over). */
  readonly bodyless: boolean;
}

/** The WebSocket as the session needs it. */
export interface V2Transport {
  /** Sends one frame as one binary message. */
  send(frame: Uint8Array): void;
  /** `false` while the transport's send buffer is full; then call `transportDrained()` once it is not. */
  transportReady?(): boolean;
  /** Closes the WebSocket with `code` (the session gives up on a proxy that breaks the protocol: 1002). */
  close?(code: number, reason: string): void;
}

/** The protocol version this client speaks: a READY announcing any other ends the tunnel with 1002. */
export const V2_CLIENT_VERSION = 2;

/**
 * The client's end of one stream the proxy opened. The local service sets
 * the `on…` handlers synchronously when it receives the stream.
 *
 * - http: `ondata`/`onend` carry the request body; answer with `respond`
 *   (with the body's first bytes when they are at hand), then `write`… and `end`.
 * - websocket: `respond(101, headers)` accepts (then `sendMessage`/`onmessage`,
 *   `close`/`onclose`); any other status refuses (then `write`/`end` the body).
 * - tcp: `write`/`end` and `ondata`/`onend`, both ways, half-close allowed.
 *
 * `write` and `sendMessage` return `false` when the stream's credit is spent:
 * stop until `onwritable`. A consumer that cannot keep up calls `pause()`
 * (the proxy then stops sending after at most one window) and `resume()`.
 */
export class V2ClientStream {
  ondata: ((chunk: Uint8Array) => void) | null = null;
  onend: (() => void) | null = null;
  onmessage: ((chunk: Uint8Array, binary: boolean, fin: boolean) => void) | null = null;
  onclose: ((code: number, reason: string) => void) | null = null;
  /** The stream was aborted (by the proxy, a protocol error, or the tunnel closing). */
  onreset: ((reason: string) => void) | null = null;
  onwritable: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly kind: V2StreamKind,
    readonly request: V2ForwardedRequest | null,
    private readonly mux: V2Mux,
    private readonly forget: (id: number) => void,
  ) {}

  /** Whether the stream still has state (it ends once finished both ways, or reset). */
  get live(): boolean {
    return this.mux.has(this.id);
  }

  /**
   * The response head; `length` when the body length is known; `body`, the
   * first body bytes when they are at hand (a small response then goes out as
   * one frame); `end` when nothing follows them. `false`: stop until `onwritable`.
   */
  respond(status: number, headers: V2Headers, options: { length?: number; end?: boolean; body?: Uint8Array } = {}): boolean {
    return this.mux.respond(this.id, { status, headers, length: options.length }, options.end === true, options.body);
  }

  write(chunk: Uint8Array): boolean {
    return this.mux.data(this.id, chunk);
  }

  /** This side is finished; with `chunk`, after these last bytes (one frame fewer). */
  end(chunk?: Uint8Array): void {
    if (chunk && chunk.length > 0) this.mux.data(this.id, chunk, true);
    else this.mux.end(this.id);
  }

  sendMessage(chunk: Uint8Array, binary: boolean): boolean {
    return this.mux.message(this.id, chunk, binary);
  }

  /** This side's WebSocket closed with `code` (1005: no code; 1006: dropped). */
  close(code: number, reason = ''): void {
    this.mux.close(this.id, code, reason);
  }

  /** Aborts the stream (for example: the local service is unreachable). */
  reset(reason = '', code: number = R.CANCEL): void {
    this.mux.reset(this.id, code, reason);
    this.forget(this.id);
  }

  pause(): void {
    this.mux.pause(this.id);
  }

  /**
   * Drops the handlers once the stream is finished. Measured in the reference
   * agent under small GETs: while finished streams still reached their local
   * requests through these handlers, the agent's scavenges took twice as long.
   */
  detach(): void {
    this.ondata = this.onend = this.onmessage = this.onclose = this.onreset = this.onwritable = null;
  }

  resume(): void {
    this.mux.resume(this.id);
  }
}

/** Where forwarded streams go on the client's side. */
export interface V2LocalServices {
  http(stream: V2ClientStream): void;
  websocket(stream: V2ClientStream): void;
  tcp(stream: V2ClientStream): void;
}

export interface V2ClientSessionOptions {
  /** Credit granted per stream (default: the protocol's initial window). A larger one speeds up uploads. */
  readonly window?: number;
}

/**
 * Decodes what the proxy sends and drives the local services: one
 * `V2ClientStream` per stream the proxy opens, with credit both ways.
 */
export class V2ClientSession {
  /** Resolves on the proxy's READY. */
  readonly ready: Promise<TunnelReady>;
  private resolveReady!: (r: TunnelReady) => void;
  private rejectReady!: (err: Error) => void;
  private readonly streams = new ChurnMap<number, V2ClientStream>();
  private readonly mux: V2Mux;
  /** The session gave up on the proxy (see `fail`): nothing more it sends is read. */
  private failed = false;

  constructor(
    private readonly transport: V2Transport,
    private readonly services: V2LocalServices,
    options: V2ClientSessionOptions = {},
  ) {
    this.ready = new Promise<TunnelReady>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
    this.mux = new V2Mux({ role: 'client', send: (f) => transport.send(f), transportReady: transport.transportReady?.bind(transport), window: options.window });
    const get = (id: number): V2ClientStream | undefined => this.streams.get(id);
    const gone = (id: number): V2ClientStream | undefined => {
      const s = this.streams.get(id);
      this.streams.delete(id);
      return s;
    };
    this.mux.attach({
      ready: (r) => {
        // The client asked for v=2 and the proxy answers the newest it speaks up to that: any other
        // version (a later one, or none) is a proxy this client cannot speak to, not one to guess at.
        if (r.version !== V2_CLIENT_VERSION) return this.fail(`unsupported protocol version ${r.version === 0 ? '(none)' : r.version} in READY`);
        this.resolveReady({ tunnelUrl: r.tunnelUrl, rawPort: r.rawPort, version: r.version });
      },
      open: (id, head, ended) =>
        this.onOpen(id, head.kind, head.kind === 'tcp' ? null : { method: head.method, path: head.path, headers: head.headers, bodyless: ended }),
      data: (id, chunk) => get(id)?.ondata?.(chunk),
      end: (id) => get(id)?.onend?.(),
      message: (id, chunk, binary, fin) => get(id)?.onmessage?.(chunk, binary, fin),
      close: (id, code, reason) => get(id)?.onclose?.(code, reason),
      reset: (id, _code, reason) => gone(id)?.onreset?.(reason || 'reset by the proxy'),
      malformed: (id, reason) => gone(id)?.onreset?.(reason),
      writable: (id) => get(id)?.onwritable?.(),
      done: (id) => gone(id)?.detach(),
    });
  }

  /** Streams in flight. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Feeds one binary WebSocket message (text messages are not part of v2 and are ignored). */
  receive(data: Uint8Array): void {
    if (!this.failed) this.mux.receive(data);
  }

  /** The transport's send buffer has room again. */
  transportDrained(): void {
    this.mux.transportDrained();
  }

  /** The WebSocket is gone: every stream is reset. */
  transportClosed(code: number, reason: string): void {
    this.rejectReady(new Error(`tunnel closed before it was ready: ${code} ${reason}`));
    this.resetAll('tunnel closed');
  }

  /** The proxy broke the protocol: `ready` rejects with `reason`, streams are reset, the WebSocket closes 1002. */
  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.rejectReady(new Error(`tunnel protocol error: ${reason}`));
    this.resetAll(reason);
    this.transport.close?.(1002, reason);
  }

  private resetAll(reason: string): void {
    this.mux.clear();
    const streams = this.streams.values();
    this.streams.clear();
    for (const s of streams) s.onreset?.(reason);
  }

  private onOpen(id: number, kind: V2StreamKind, request: V2ForwardedRequest | null): void {
    const stream = new V2ClientStream(id, kind, request, this.mux, (x) => this.streams.delete(x));
    this.streams.set(id, stream);
    const refusal = request && kind !== 'tcp' ? localRefusal(kind, request.method, request.path) : null;
    if (refusal) return refuse(stream, ...refusal);
    try {
      if (kind === 'http') this.services.http(stream);
      else if (kind === 'websocket') this.services.websocket(stream);
      else this.services.tcp(stream);
    } catch {
      stream.reset('local service failed', R.INTERNAL_ERROR);
    }
  }
}

function refuse(stream: V2ClientStream, status: number, text: string): void {
  const body = new TextEncoder().encode(text + '\n');
  stream.respond(status, [['content-type', 'text/plain; charset=utf-8']], { length: body.length, body, end: true });
}
