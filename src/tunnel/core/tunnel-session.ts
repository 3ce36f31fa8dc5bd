import type { Socket } from 'node:net';
import { ChurnMap } from '../../common/churn-map.js';
import { HttpExchange, type HttpExchangeEnd, type HttpRequestBody, type HttpResponseSink } from './http-exchange.js';
import type { StreamFailure } from './stream-failure.js';
import { carriesWebSockets, type HttpRequestHead, type InboundStreamEvent, type TunnelWire, type TunnelWireHandler } from './stream-types.js';
import { TcpStream } from './tcp-stream.js';
import { WebSocketStream, type WebSocketSink } from './websocket-stream.js';

/** Who and where a tunnel is. */
export interface TunnelInfo {
  /** 16 lowercase hex characters. */
  readonly subdomain: string;
  readonly user: string;
  /** The registering client's IP. */
  readonly clientIp: string;
  /** 0 without a raw TCP port. */
  readonly rawPort: number;
  /** Empty without a tunnel domain. */
  readonly tunnelUrl: string;
}

/** A counter shared by all tunnels (the global raw TCP connection cap). */
export interface ConnectionGate {
  tryAcquire(): boolean;
  release(): void;
}

export interface TunnelSessionOptions {
  readonly responseTimeoutMs: number;
  /** Raw TCP connections this tunnel may carry at once. */
  readonly maxTcpConns: number;
  readonly tcpGate: ConnectionGate;
  /** Time a raw TCP requester that has sent its FIN may wait for a byte (or the end) from the client. */
  readonly halfClosedIdleMs: number;
  /** Called for every finished HTTP exchange (events, metrics). */
  readonly onHttpDone?: (end: HttpExchangeEnd) => void;
  /**
   * Who is at the other end of the WebSocket, as requesters waiting on it are told when it goes
   * (`<peer> disconnected`, `<peer> stopped responding`): `tunnel client` unless said otherwise.
   */
  readonly peer?: string;
}

/** How a session ended. */
export interface TunnelSessionEnd {
  readonly closeCode: number;
  readonly closeReason: string;
  readonly httpRequests: number;
  readonly tcpConnections: number;
  readonly durationMs: number;
}

type Stream = HttpExchange | TcpStream | WebSocketStream;

/**
 * One live tunnel: a WebSocket (behind a `TunnelWire` codec of any protocol
 * version) multiplexing streams — HTTP exchanges and raw TCP connections. When
 * the WebSocket ends, every stream ends with it at once: waiting HTTP requests
 * are answered with why (`endFailure`), TCP connections are closed.
 */
export class TunnelSession implements TunnelWireHandler {
  readonly startedAt = Date.now();
  private readonly streams = new ChurnMap<string, Stream>();
  private tcpOpen = 0;
  private httpTotal = 0;
  private tcpTotal = 0;
  private ended = false;
  /** The proxy's own close (`close`), once it has made one: what the streams still waiting are told. */
  private closedByProxy: { readonly code: number; readonly reason: string } | null = null;
  /** Why keepalive gave up on the client, once it has: the end's reason instead of a bare 1006. */
  private timedOutReason: string | null = null;

  /** The proxy has closed the WebSocket (`close`, `timedOut`): no new stream, as none could reach the client. */
  private get closing(): boolean {
    return this.closedByProxy !== null || this.timedOutReason !== null;
  }

  constructor(
    readonly info: TunnelInfo,
    readonly wire: TunnelWire,
    private readonly options: TunnelSessionOptions,
    private readonly onEnded: (session: TunnelSession, end: TunnelSessionEnd) => void,
  ) {}

  /** Attaches to the wire and announces the tunnel to the client. */
  start(): void {
    this.wire.attach(this);
    this.wire.ready({ tunnelUrl: this.info.tunnelUrl, rawPort: this.info.rawPort });
  }

  get live(): boolean {
    return !this.ended;
  }

  /** Streams in flight, by kind (diagnostics, tests). */
  counts(): { http: number; tcp: number } {
    return { http: this.streams.size - this.tcpOpen, tcp: this.tcpOpen };
  }

  /**
   * Opens an HTTP exchange. The caller feeds the request body into the
   * returned writer; the response arrives at `sink`. `null` when the tunnel has
   * ended.
   */
  openHttp(head: HttpRequestHead, sink: HttpResponseSink): HttpRequestBody | null {
    if (this.ended || this.closing) return null;
    const id = this.wire.allocateStreamId('http');
    const exchange = new HttpExchange(id, this.wire, sink, this.options.responseTimeoutMs, (x, end) => {
      this.streams.delete(x.id);
      this.options.onHttpDone?.(end);
    });
    this.streams.set(id, exchange);
    this.httpTotal++;
    exchange.start(head);
    return exchange;
  }

  /**
   * Opens a WebSocket stream for an upgrade request (protocol v2). The front
   * end feeds the requester's messages into the returned stream; the client's
   * answer arrives at `sink`. `null` when the tunnel has ended or its protocol
   * cannot carry WebSockets.
   */
  openWebSocket(head: HttpRequestHead, sink: WebSocketSink): WebSocketStream | null {
    if (this.ended || this.closing || !carriesWebSockets(this.wire)) return null;
    const id = this.wire.allocateStreamId('websocket');
    const stream = new WebSocketStream(id, this.wire, sink, this.options.responseTimeoutMs, (x, end) => {
      this.streams.delete(x.id);
      this.options.onHttpDone?.(end);
    });
    this.streams.set(id, stream);
    this.httpTotal++;
    stream.start(head);
    return stream;
  }

  /**
   * Carries a TCP connection that arrived on the tunnel's port, or closes it at once when over a limit
   * (or the tunnel is ending). True when it is carried: only those count as the tunnel's connections.
   */
  acceptTcp(socket: Socket): boolean {
    if (this.ended || this.closing || this.tcpOpen >= this.options.maxTcpConns || !this.options.tcpGate.tryAcquire()) {
      socket.destroy();
      return false;
    }
    const id = this.wire.allocateStreamId('tcp');
    const stream = new TcpStream(id, socket, this.wire, this.options.halfClosedIdleMs, (s) => {
      this.streams.delete(s.id);
      this.tcpOpen--;
      this.options.tcpGate.release();
    });
    this.streams.set(id, stream);
    this.tcpOpen++;
    this.tcpTotal++;
    stream.start();
    return true;
  }

  /**
   * Closes the tunnel's WebSocket; the streams end when it has closed. New
   * ones are refused from now on: their frames would be dropped (the socket
   * is no longer open) and a request would wait out the close handshake, up
   * to `ws`'s 30 s close timeout with a slow client, for a 502.
   */
  close(code: number, reason: string): void {
    this.closedByProxy ??= { code, reason };
    this.wire.close(code, reason);
  }

  /**
   * Keepalive is about to terminate the client's WebSocket (it stopped answering pings): the end
   * reports 1006 with `reason`, the proxy's doing, not as a client that left.
   */
  timedOut(reason: string): void {
    this.timedOutReason ??= reason;
  }

  onStreamEvent(streamId: string, event: InboundStreamEvent): void {
    const stream = this.streams.get(streamId);
    if (stream) return stream.onEvent(event);
    // A stream that ended on an earlier event of the same delivery (a v1 response refused at its head):
    // bytes the codec holds against a budget until they are flushed will never be, so they go back now.
    if (event.type === 'data') event.flushed?.();
  }

  onWritable(streamId: string | null): void {
    if (streamId !== null) {
      this.streams.get(streamId)?.writable();
      return;
    }
    for (const s of this.streams.values()) s.writable();
  }

  onClose(code: number, reason: string, forClientFrames: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (forClientFrames) this.closedByProxy ??= { code, reason };
    const failure = this.endFailure();
    for (const s of this.streams.values()) s.tunnelGone(failure);
    this.streams.clear();
    const timedOut = this.timedOutReason;
    this.onEnded(this, {
      closeCode: timedOut === null ? code : 1006,
      closeReason: timedOut ?? reason,
      httpRequests: this.httpTotal,
      tcpConnections: this.tcpTotal,
      durationMs: Date.now() - this.startedAt,
    });
  }

  /**
   * What requests still waiting are answered as the WebSocket ends. The proxy shutting down (1001) is 503, so
   * a requester may retry (another replica, or this one once it is back); any other close of the proxy's own
   * (a raw port lost, the maximum age) is 502 with its reason; else the peer went: it left, or keepalive gave up on it.
   */
  private endFailure(): StreamFailure {
    const peer = this.options.peer ?? 'tunnel client';
    const byProxy = this.closedByProxy;
    if (byProxy?.code === 1001) return { status: 503, reason: byProxy.reason };
    if (byProxy) return { status: 502, reason: `tunnel closed by the proxy: ${byProxy.reason}` };
    if (this.timedOutReason !== null) return { status: 502, reason: `${peer} stopped responding` };
    return { status: 502, reason: `${peer} disconnected` };
  }
}
