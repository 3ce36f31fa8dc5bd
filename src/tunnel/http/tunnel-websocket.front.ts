import type { IncomingMessage } from 'node:http';
import { checkHandshake } from '../../upgrade/handshake.js';
import type { Duplex } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { WebSocket, type WebSocketServer } from 'ws';
import { WsproxyEvents } from '../../common/events.js';
import { explainProtocolCloses, onWebSocketEnd } from '../../common/protocol-close.js';
import { Utf8Stream } from '../../common/utf8-stream.js';
import { statusText } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { DrainService } from '../../lifecycle/drain.service.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import { acceptingServer } from '../../upgrade/accepting-server.js';
import { SocketGoneSignal } from '../../upgrade/client-gone.js';
import { KeepaliveService } from '../../upgrade/keepalive.service.js';
import { WS_SEND_HIGH_FRAMES } from '../../relay/relay-pipe.js';
import type { HeaderList, ResponseHead } from '../core/stream-types.js';
import type { TunnelSession } from '../core/tunnel-session.js';
import type { WebSocketSink, WebSocketStream } from '../core/websocket-stream.js';
import { isSendableCloseCode, sendableCloseReason } from '../protocol/v2.js';
import { isForwardableStatus, requestHeadersForClient, responseHeadersForRequester } from './header-hygiene.js';

/**
 * Bytes queued towards a requester's WebSocket before the client's messages for it wait; or frames
 * (`WS_SEND_HIGH_FRAMES`, as for a relay's client): each queued frame costs a few hundred bytes of heap
 * whatever its size, and 256 KiB of 1-byte fragments (3 bytes each on the wire) are ~87 000 frames.
 */
export const REQUESTER_HIGH_WATER = 256 * 1024;
/**
 * Handshake headers that belong to one hop: the proxy completes the
 * requester's handshake itself and the client makes its own to the origin.
 * `Sec-WebSocket-Protocol` is kept: the origin chooses the subprotocol.
 */
const HOP_WS_HEADERS = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-accept']);

/**
 * A WebSocket upgrade as the requester made it. Arrived here: its own request;
 * forwarded by another replica (cluster mode): as the entry replica saw it.
 */
export interface WebSocketRequest {
  /** The requester's IP (trusted proxies honoured). */
  readonly clientIp: string;
  /** The Host the requester asked for. */
  readonly host: string;
  /** The request target (origin-form, else refused). */
  readonly path: string;
  /** The requester's header fields, as Node's `rawHeaders`. */
  readonly rawHeaders: readonly string[];
}

export interface WebSocketForwardContext extends WebSocketRequest {
  /** Forwarded by another replica, which reports it in the metrics. */
  readonly forwarded: boolean;
  /** Called once when the requester's connection is gone (the per-IP slot). */
  readonly release: () => void;
}

interface Answer {
  readonly protocol: string | null;
  readonly headers: HeaderList;
}

/**
 * WebSocket upgrades to a tunnel subdomain (protocol v2): the upgrade request
 * becomes a WebSocket stream; when the client accepts, the requester's
 * handshake is completed here (`ws`, noServer) with the origin's subprotocol
 * and headers, and messages flow through the stream with backpressure both
 * ways.
 */
@Injectable()
export class TunnelWebSocketFront {
  private readonly wss: WebSocketServer;
  private readonly answers = new WeakMap<IncomingMessage, Answer>();

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly keepalive: KeepaliveService,
    private readonly events: WsproxyEvents,
    private readonly drain: DrainService,
  ) {
    this.wss = acceptingServer({
      maxPayload: config.maxMessageBytes,
      handleProtocols: (offered, req) => {
        const chosen = this.answers.get(req)?.protocol;
        return chosen && offered.has(chosen) ? chosen : false;
      },
    });
    this.wss.on('headers', (lines: string[], req: IncomingMessage) => {
      for (const [name, value] of this.answers.get(req)?.headers ?? []) lines.push(`${name}: ${value}`);
    });
    this.wss.on('error', () => undefined);
  }

  /**
   * Forwards one upgrade request to a live tunnel whose wire carries
   * WebSockets. `req` is the upgrade this replica received (the handshake is
   * completed on it); what the tunnel client gets comes from `ctx`.
   */
  forward(session: TunnelSession, req: IncomingMessage, socket: Duplex, head: Buffer, ctx: WebSocketForwardContext): void {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      ctx.release();
    };
    // Refused here, the requester still got a status: counted as the accepted ones are (not for a forwarded upgrade).
    const refuse = (status: number, reason: string): void => {
      release();
      if (!ctx.forwarded) this.events.emit('tunnel.http', { status, forwarded: false });
      writeHttpRefusal(socket, status, reason);
    };
    const problem = checkHandshake(req);
    if (problem) return refuse(400, problem);
    const path = ctx.path;
    if (!path.startsWith('/')) return refuse(400, 'bad request target');
    const headers = requestHeadersForClient(ctx.rawHeaders, {
      clientIp: ctx.clientIp,
      proto: this.config.tunnelPublicScheme,
      host: ctx.host,
    }).filter(([name]) => !HOP_WS_HEADERS.has(name));

    // The upgrade socket is not read while the client's answer is awaited: without a watch, a requester
    // that left would hold its per-IP slot and the stream until the response timeout.
    const gone = new SocketGoneSignal(socket);
    const requester = new RequesterWebSocket(req, socket, head, gone, this.wss, this.answers, this.keepalive, this.drain);
    const stream = session.openWebSocket({ method: 'GET', path, headers }, requester);
    if (!stream) return refuse(404, 'tunnel not found');
    requester.bind(stream);
    gone.addEventListener('abort', () => {
      requester.socketClosed();
      release();
      if (!ctx.forwarded) this.events.emit('tunnel.http', { status: requester.status, forwarded: false });
    });
  }
}

/** The requester's end of a WebSocket stream: its raw upgrade socket, then its WebSocket. */
class RequesterWebSocket implements WebSocketSink {
  /** What the requester got: 101, a refusal or error status; 499 while nothing was answered. */
  status = 499;
  private stream: WebSocketStream | null = null;
  private ws: WebSocket | null = null;
  private drainWaiter: (() => void) | null = null;
  /** Frames handed to the WebSocket whose write callback has not run yet. */
  private unwritten = 0;
  private readonly afterFlush = (): void => {
    this.unwritten--;
    this.checkDrained();
  };
  private readonly recheck = (): void => this.checkDrained();
  /** Whether the message being sent is text (null between messages), and the check of its UTF-8. */
  private messageIsText: boolean | null = null;
  /** `close()` was called: the requester is read on to its close answer, never paused again. */
  private closing = false;
  /**
   * After `close()`, the stream had no credit for a message: that one and everything after it are dropped (the
   * app gets a prefix of what the requester sent, never one with a hole). Until then, what the requester sent
   * before it saw the close still goes on (the proxy's direction of the stream is MESSAGE* then CLOSE).
   */
  private dropping = false;
  private readonly text = new Utf8Stream();

  constructor(
    private readonly req: IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
    private readonly gone: SocketGoneSignal,
    private readonly wss: WebSocketServer,
    private readonly answers: WeakMap<IncomingMessage, Answer>,
    private readonly keepalive: KeepaliveService,
    private readonly drain: DrainService,
  ) {}

  bind(stream: WebSocketStream): void {
    this.stream = stream;
  }

  socketClosed(): void {
    // Before the handshake completed; afterwards the WebSocket's own close reports it.
    if (!this.ws) this.stream?.abort();
  }

  accept(head: ResponseHead): boolean {
    const stream = this.stream;
    if (!stream || this.socket.destroyed || !this.socket.writable) return false;
    const protocol = head.headers.find(([name]) => name.toLowerCase() === 'sec-websocket-protocol')?.[1].trim() ?? null;
    const headers = responseHeadersForRequester(head.headers).filter(([name]) => !name.startsWith('sec-websocket-'));
    this.answers.set(this.req, { protocol, headers });
    const requesterHead = this.gone.releaseInto(this.head);
    try {
      this.wss.handleUpgrade(this.req, this.socket, requesterHead, (ws) => {
        this.ws = ws;
        this.status = 101;
        this.keepalive.watch(ws);
        // Drained like a relay: a requester that never answers its close frame (1001 from the drain or
        // from its tunnel ending) is dropped once the frame has had its moment, instead of holding the
        // process until ws's 30 s close timeout, past the shutdown deadline.
        ws.once('close', this.drain.track({ shutdown: (code, reason) => this.close(code, reason), terminate: () => ws.terminate() }));
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (this.dropping) return;
          if (stream.message(data, isBinary)) return;
          // No credit for more. After close(), the requester is read on to its answer, not paused for again:
          // what follows is dropped.
          if (this.closing) this.dropping = true;
          else ws.pause();
        });
        stream.onWritable(() => ws.resume());
        // The requester's frames breaking RFC 6455: its close frame says why, the requester has a moment to
        // read it, and the client hears the code the proxy sent (1002, 1009…), not the 1006 that follows.
        explainProtocolCloses(ws);
        onWebSocketEnd(ws, (code, reason) => stream.requesterClosed(code, reason));
        stream.opened();
      });
    } catch {
      this.socket.destroy();
      return false;
    }
    return true;
  }

  refuse(head: ResponseHead, body: Uint8Array): void {
    if (!isForwardableStatus(head.status)) return this.fail(502, 'bad response status from tunnel');
    if (this.socket.destroyed) return;
    this.status = head.status;
    const lines = [`HTTP/1.1 ${head.status} ${statusText(head.status)}`];
    for (const [name, value] of responseHeadersForRequester(head.headers)) lines.push(`${name}: ${value}`);
    lines.push(`content-length: ${body.length}`, 'connection: close');
    this.socket.write(lines.join('\r\n') + '\r\n\r\n');
    this.socket.end(body);
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  fail(status: number, reason: string): void {
    if (this.ws) return this.close(1011, reason);
    this.status = status;
    writeHttpRefusal(this.socket, status, reason);
  }

  send(chunk: Uint8Array, binary: boolean, fin: boolean): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return true;
    // A message's first fragment says what it is; the requester must never get invalid text.
    this.messageIsText ??= !binary;
    const valid = !this.messageIsText || this.text.push(chunk, fin);
    if (fin) this.messageIsText = null;
    if (!valid) {
      this.close(1011, 'invalid UTF-8 text from the tunnel');
      return true;
    }
    this.unwritten++;
    ws.send(chunk, { binary, fin }, this.afterFlush);
    return ws.bufferedAmount < REQUESTER_HIGH_WATER && this.unwritten < WS_SEND_HIGH_FRAMES;
  }

  whenDrained(cb: () => void): void {
    this.drainWaiter = cb;
    queueMicrotask(this.recheck);
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    if (!ws) {
      this.socket.destroy();
      return;
    }
    // Paused while the stream had no credit, the WebSocket would never read the requester's answer to this
    // close (it waits behind the upload nobody takes any more): its connection and per-IP slot would last
    // until ws's close timeout. Read on; what comes is dropped. The stream may still be open (the app closed
    // first, the requester's answer is awaited) and its wire without credit: forwarding what comes would
    // pause the WebSocket again, behind the same upload. Not paused, the requester's messages go on to the
    // stream until it has no credit for one (see `dropping`): those it sent before it saw this close are
    // the app's, as on a direct connection.
    this.closing = true;
    if (ws.isPaused) {
      this.dropping = true;
      ws.resume();
    }
    if (isSendableCloseCode(code)) ws.close(code, sendableCloseReason(reason));
    else if (code === 1005) ws.close();
    else ws.terminate();
  }

  private checkDrained(): void {
    const ws = this.ws;
    if (!this.drainWaiter) return;
    if (ws && ws.readyState === WebSocket.OPEN && (ws.bufferedAmount >= REQUESTER_HIGH_WATER || this.unwritten >= WS_SEND_HIGH_FRAMES)) return;
    const cb = this.drainWaiter;
    this.drainWaiter = null;
    cb();
  }
}

