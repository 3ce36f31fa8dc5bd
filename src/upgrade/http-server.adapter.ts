import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { Express } from 'express';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChurnSet } from '../common/churn-map.js';
import { declaresNoBody } from '../common/request-body.js';
import { resetSocket } from '../common/reset-socket.js';
import { LISTENER_REFUSALS, refusalForClientError, type ListenerRefusal } from './listener-refusals.js';
import { BODY_TIMEOUT_REASON, answerPlain, responseInFlight, writeHttpRefusal } from './raw-response.js';
import { frontRequestProblem } from './request-target.js';

/** The error listener a socket keeps once Node's parser has refused its bytes. */
const ignoreError = (): void => undefined;

/** Bounds for every connection of the public listener, upgrades included. */
export interface ListenerBounds {
  /** Time a client has to send complete request headers (slowloris). */
  readonly headersTimeoutMs: number;
  /** Largest request head accepted; larger gets 431 (header floods). */
  readonly maxHeaderBytes: number;
  /** Time a request body to a route behind Express may take to arrive whole (default 60 s). */
  readonly bodyDeadlineMs?: number;
}

/** Where a connection keeps its handle in `BoundedExpressAdapter.connections`. */
const CONNECTION_HANDLE = Symbol('connectionHandle');
type TrackedSocket = Socket & { [CONNECTION_HANDLE]: number };

/** Requests one keep-alive connection may carry; the last is answered with `Connection: close`. */
export const MAX_REQUESTS_PER_CONNECTION = 1000;

/** Time a request body to a route behind Express (none of the service's own reads one) may take to arrive whole. */
const BODY_DEADLINE_MS = 60_000;

/** Node's keep-alive timeout: how long a connection may wait, silent, for its next request. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Requests whose body has its whole-body deadline (`boundBody`), so that none gets two. */
const boundedBodies = new WeakSet<IncomingMessage>();

/**
 * The whole-body deadline: 408 on the connection if the route answered nothing yet (written like the
 * listener's own refusals, so the route's response object is left alone), else the connection is dropped.
 */
function boundBody(req: IncomingMessage, res: ServerResponse, ms: number): void {
  if (declaresNoBody(req) || boundedBodies.has(req)) return;
  boundedBodies.add(req);
  const timer = setTimeout(() => {
    // The response is cut short: a reset, as for any aborted response (see answerPlain).
    if (res.headersSent) resetSocket(req.socket);
    else writeHttpRefusal(req.socket, 408, BODY_TIMEOUT_REASON);
  }, ms);
  timer.unref();
  // After 'end', or when the request is destroyed with its connection.
  req.once('close', () => clearTimeout(timer));
}

/** The path of a request target, for echoing back: no query or fragment, and no scheme, authority or user info of an absolute-form target. */
function pathOnly(target: string): string {
  const path = target.split(/[?#]/, 1)[0]!;
  if (path.startsWith('/')) return path;
  try {
    return new URL(path).pathname;
  } catch {
    return '/';
  }
}

/**
 * Nest's Express adapter, creating the HTTP server with the bounds above. They
 * have to be given at creation: Node checks `headersTimeout` on a timer whose
 * period (`connectionsCheckingInterval`) cannot be changed afterwards, and its
 * default of 30 s would let a slow handshake live far past the timeout.
 */
export class BoundedExpressAdapter extends ExpressAdapter {
  private front: ((req: IncomingMessage, res: ServerResponse) => boolean) | null = null;
  private refused: (refusal: ListenerRefusal) => void = () => undefined;
  private draining: () => boolean = () => false;
  /** The last response of each connection: a parser error while its request (`res.req`) is incomplete is in its body. */
  private readonly lastResponse = new WeakMap<Duplex, ServerResponse>();
  /** Connections whose refusal waits for the responses before it. */
  private readonly refusing = new WeakSet<Duplex>();
  /**
   * Every open connection of the listener, for `close`. A `ChurnSet`, not a `Set`: a `Set` under one add and one
   * delete per connection replaces its table every few dozen connections, and a replaced table in the old
   * generation keeps the sockets it held (and all they reach) through every scavenge until a full GC: in the setup
   * bench that promoted about 7 KiB per relay and made each scavenge several times longer.
   */
  private readonly connections = new ChurnSet<Socket>();
  /**
   * One `close` listener for every connection (`this` is the socket): nothing allocated per connection.
   * It also disarms a next-request deadline, which would otherwise hold the closed socket until it fired.
   */
  private readonly forgetConnection = ((adapter: BoundedExpressAdapter) =>
    function (this: TrackedSocket): void {
      adapter.connections.delete(this[CONNECTION_HANDLE]);
      adapter.stopAwaitingNextRequest(this);
    })(this);
  /** Keep-alive connections between requests: the deadline for the next request's head. */
  private readonly nextRequestDeadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  /** The whole-body deadline of `boundBody`. */
  private readonly bodyDeadlineMs: number;

  constructor(
    instance: Express,
    private readonly bounds: ListenerBounds,
  ) {
    super(instance);
    this.bodyDeadlineMs = bounds.bodyDeadlineMs ?? BODY_DEADLINE_MS;
  }

  /** Requests this handler takes (returns true) never reach Express. */
  setFrontHandler(handler: (req: IncomingMessage, res: ServerResponse) => boolean): void {
    this.front = handler;
  }

  /** Told of every request the listener itself refuses, as the refusal is sent (metrics). */
  setRefusalListener(listener: (refusal: ListenerRefusal) => void): void {
    this.refused = listener;
  }

  /** While `check` says the service drains, every response closes its connection (`Connection: close`). */
  setDrainingCheck(check: () => boolean): void {
    this.draining = check;
  }

  override initHttpServer(): void {
    const express = this.getInstance<(req: IncomingMessage, res: ServerResponse) => void>();
    // Every request Node parses on a connection, whoever answers it: the next-request deadline is
    // disarmed by its head and armed again when its response is out.
    const track = (req: IncomingMessage, res: ServerResponse): void => {
      this.lastResponse.set(req.socket, res);
      this.stopAwaitingNextRequest(req.socket);
      res.once('finish', () => this.awaitNextRequest(req.socket, res));
      // A client on a keep-alive connection reconnects for its next request, through the load
      // balancer to a replica that is not going away. The connection's last request (Node marks it
      // `maxRequestsOnConnectionReached`) ends it too: Node writes `Connection: close` on that response but
      // keeps the connection open (RFC 9112 §9.6: the sender of "close" closes), answering what follows 503
      // itself, with no 'request' event, so no next-request deadline follows those.
      // An HTTP/1.0 message with Transfer-Encoding has faulty framing whatever else it says: a 1.0 hop before us
      // would not have read it as chunked, and may hold the rest of it (RFC 9112 §6.1: close after processing it).
      if (
        this.draining() ||
        (res as ServerResponse & { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached ||
        (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined)
      ) {
        res.shouldKeepAlive = false;
      }
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      if (this.closingBefore(req.socket)) return;
      track(req, res);
      // Refused before Express, which would also read an unreadable target with the legacy `url.parse`
      // and print it (query and token included) in a deprecation warning.
      const problem = frontRequestProblem(req);
      if (problem) {
        this.refused(problem);
        const [status, reason] = LISTENER_REFUSALS[problem];
        return answerPlain(res, status, reason, true);
      }
      if (this.front !== null && this.front(req, res)) return;
      boundBody(req, res, this.bodyDeadlineMs);
      express(req, res);
    };
    const server: Server = createServer(
      {
        headersTimeout: this.bounds.headersTimeoutMs,
        // Node's requestTimeout would cut every body at one deadline, however fast it flows: a streamed
        // tunnel upload included. Tunnel bodies have their stall timer; the routes behind Express get
        // the whole-body deadline below.
        requestTimeout: 0,
        connectionsCheckingInterval: Math.min(1000, this.bounds.headersTimeoutMs),
        maxHeaderSize: this.bounds.maxHeaderBytes,
        // frontRequestProblem answers an HTTP/1.1 request without Host, with a reason and a count.
        requireHostHeader: false,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      },
      onRequest,
    );
    // Node answers `Expect: 100-continue` itself, before any route could refuse the request (413 for a declared
    // length, an unknown tunnel): the client would upload a body already refused. 100 goes out once something
    // starts reading the body instead, and a refusal goes out in its place (RFC 9110 §10.1.1).
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      req.once('resume', () => {
        if (!res.headersSent && !res.writableEnded) res.writeContinue();
      });
      onRequest(req, res);
    });
    // Without a listener Node answers an expectation other than 100-continue with 417 itself, and no
    // 'request' event: the deadline armed after the response before it would fire into this request's
    // body, and none would follow its 417 (empty lines could then hold the connection forever). The
    // 417 is the same (RFC 9110 §10.1.1), with a reason.
    // Its body is read and dropped with the connection kept, as after an early answer from a route behind
    // Express: it gets the same whole-body deadline, or a trickle would hold the connection forever.
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      if (this.closingBefore(req.socket)) return;
      track(req, res);
      boundBody(req, res, this.bodyDeadlineMs);
      answerPlain(res, 417, 'expectation not supported');
    });
    // A request that takes the connection over (a WebSocket upgrade, CONNECT) is the next request too: the
    // deadline armed after the response before it must not fire into what the socket carries now.
    const taken = (req: IncomingMessage): void => this.stopAwaitingNextRequest(req.socket);
    server.prependListener('upgrade', taken);
    server.prependListener('connect', taken);
    server.on('connection', (socket: TrackedSocket) => {
      socket[CONNECTION_HANDLE] = this.connections.add(socket);
      // 'close' comes once: `on`, not `once`, which would wrap the listener in a closure per connection.
      socket.on('close', this.forgetConnection);
    });
    // httpAllowHalfOpen stays false: a requester's FIN ends its connection, and with it the exchange (a tunnel's stream,
    // its local request, the requester's MAX_TUNNEL_HTTP_PER_IP slot). A requester gone altogether (a closed tab, an
    // exited script) sends the same FIN as one that only half-closed (`nc -N`) and waits: answering the latter would
    // hold the former's stream and slot until the answer's next byte, forever for a quiet SSE stream.
    // Bounds the work one connection's pipelined burst makes: the last request's response closes the connection
    // (see track); a request pipelined past it is never answered.
    server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
    // Node answers requests its parser refuses with an empty 400/431/408; these say why.
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    // Without a listener Node drops a CONNECT without a word; this is no forward proxy.
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => socket.destroy());
      this.refuseConnectInTurn(socket);
    });
    this.httpServer = server;
  }

  /**
   * Closes the listener. Node's `server.close()` closes the keep-alive connections that wait between
   * requests, but not one that has not sent (all of) its first request head — a browser's or a load
   * balancer's preconnect, a slowloris — and it stops the timer that would have answered those 408 at
   * `HANDSHAKE_TIMEOUT_MS`: such a connection would hold the close, and the process's exit, until the
   * shutdown deadline (`SHUTDOWN_TIMEOUT_MS` + 5 s) with nothing left to serve. Those are ended here;
   * connections with a response in flight and upgraded ones (no parser any more) are left to finish.
   */
  override close(): Promise<unknown> | undefined {
    const closing = super.close();
    for (const socket of this.connections.values()) {
      const parser = (socket as Socket & { parser?: unknown }).parser;
      if (parser && responseInFlight(socket) === null) socket.destroy();
    }
    return closing;
  }

  /**
   * Whether a response before this request on `socket` closes the connection (it says `Connection: close`:
   * a refusal of the listener or a front handler, the drain, the connection's last request). RFC 9112 §9.6:
   * a server that sends "close" MUST NOT process any further requests received on that connection. Node's
   * parser reads on into the bytes pipelined behind such a request and hands over every request it finds
   * there; each would reach its route (a tunnel, whose service would act on it) and its answer would never
   * go out. Such a request is left unanswered: the connection closes once the response before it is out,
   * and its queued response with it.
   */
  private closingBefore(socket: Duplex): boolean {
    const previous = this.lastResponse.get(socket);
    return previous !== undefined && (!previous.shouldKeepAlive || (previous as ServerResponse & { _last?: boolean })._last === true);
  }

  /** Disarms the deadline `awaitNextRequest` set for `socket`, if any. */
  private stopAwaitingNextRequest(socket: Duplex): void {
    const waiting = this.nextRequestDeadlines.get(socket);
    if (waiting === undefined) return;
    clearTimeout(waiting);
    this.nextRequestDeadlines.delete(socket);
  }

  /**
   * Bounds the gap between a keep-alive response and the next request's head. Node's keep-alive timeout
   * is a socket timeout that any byte renews, and its head timer only starts with a request line: the
   * empty lines a parser skips before one (RFC 9112 §2.2) would hold the connection open forever at two
   * bytes a few seconds, past every slowloris bound. A client that reuses the connection starts its
   * next request within the keep-alive timeout and completes its head within `headersTimeoutMs` (checked
   * once a second), so this deadline never cuts a request Node would have served.
   */
  private awaitNextRequest(socket: Duplex, res: ServerResponse): void {
    // Closing, gone, or the next pipelined response already under way (Node assigned it before this ran).
    if (!res.shouldKeepAlive || socket.destroyed || responseInFlight(socket) !== null) return;
    // An early answer, its request body still arriving (read and dropped, the connection kept): the gap
    // before the next request starts once that body is in (a stalled one meets Node's keep-alive timeout).
    if (!res.req.complete) {
      // Dropped by Node because nobody reads it (a front handler's early answer: an unknown tunnel's 404), the
      // body gets the whole-body deadline a route behind Express gives it, or a trickle would hold the
      // connection forever. A body a handler still reads (a tunnel streaming it on) is that handler's.
      if ((res.req as IncomingMessage & { _dumped?: boolean })._dumped) boundBody(res.req, res, this.bodyDeadlineMs);
      return void res.req.once('end', () => this.awaitNextRequest(socket, res));
    }
    const previous = this.nextRequestDeadlines.get(socket);
    if (previous !== undefined) clearTimeout(previous);
    const checkEveryMs = Math.min(1000, this.bounds.headersTimeoutMs);
    const timer = setTimeout(
      () => {
        this.nextRequestDeadlines.delete(socket);
        // Gone, answering, or no longer HTTP (taken over by an upgrade: Node has freed its parser).
        if (socket.destroyed || responseInFlight(socket) !== null || !(socket as Duplex & { parser?: unknown }).parser) return;
        this.refused('head_timeout');
        const [status, reason] = LISTENER_REFUSALS.head_timeout;
        writeHttpRefusal(socket, status, reason);
      },
      KEEP_ALIVE_TIMEOUT_MS + this.bounds.headersTimeoutMs + 2 * checkEveryMs,
    );
    timer.unref();
    this.nextRequestDeadlines.set(socket, timer);
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (!socket.listeners('error').includes(ignoreError)) socket.on('error', ignoreError);
    // The next request came (refused below, or the connection failed): a deadline armed after the response
    // before it would count a second refusal into a connection that has its answer, or is gone.
    this.stopAwaitingNextRequest(socket);
    // Bytes after a request that asked to close (RFC 9112 §9.6): its response still goes out, then Node
    // closes the connection; the bytes are ignored (the parser reports each further read the same way).
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      if (responseInFlight(socket) === null) socket.destroy();
      return;
    }
    const { rawPacket, bytesParsed } = err as NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number };
    const firstPacket = rawPacket !== undefined && (socket as Socket).bytesRead === rawPacket.length;
    const refusal = refusalForClientError(err.code, rawPacket, bytesParsed, firstPacket);
    // Not a parser error: the connection failed (a reset). Not writable: already answered (the parser
    // then reports the end of a request cut short by our own answer) or gone. Neither is a new refusal.
    if (refusal === null || !socket.writable) return void socket.destroy();
    // The parser stays failed and reports each further read (or its head timer) again: the refusal already waits.
    if (this.refusing.has(socket)) return void socket.pause();
    this.refusing.add(socket);
    const last = this.lastResponse.get(socket);
    this.refuseInTurn(socket, refusal, last !== undefined && !last.req.complete ? last : null);
  }

  /**
   * Writes the refusal once the responses before the refused request are out: Node sends pipelined
   * responses in order, attaching the next to the socket as each finishes. `broken` is the response to
   * the request whose body the parser refused (null for a refused head): it gives way to the refusal if
   * it has not started; if it has started, or is already out, the connection is dropped, as a refusal
   * would be read as part of it or as the answer to the client's next request.
   */
  private refuseInTurn(socket: Duplex, refusal: ListenerRefusal, broken: ServerResponse | null): void {
    // A response before it asked to close the connection (Node ends it once that is out), or it is gone.
    if (!socket.writable) return;
    const res = responseInFlight(socket);
    if (res !== null && res !== broken) {
      // Nothing more is parsed on this connection: nothing is read until the refusal is written.
      socket.pause();
      res.once('close', () => this.refuseInTurn(socket, refusal, broken));
      return;
    }
    if (broken?.headersSent) return void resetSocket(socket);
    this.refused(refusal);
    const [status, reason] = LISTENER_REFUSALS[refusal];
    // Read on, so that the client closing after the refusal closes the connection (further bytes destroy it).
    socket.resume();
    writeHttpRefusal(socket, status, reason);
  }

  /**
   * Answers a CONNECT (405) once the responses to the requests pipelined before it are out: Node hands the
   * socket over with those still being made, and a refusal written at once would be read as the answer to
   * the first of them (RFC 9112 §9.3.2), the real answer cut off behind it.
   */
  private refuseConnectInTurn(socket: Duplex): void {
    if (socket.destroyed) return;
    const res = responseInFlight(socket);
    if (res !== null) return void res.once('close', () => this.refuseConnectInTurn(socket));
    this.refused('connect');
    const [status, reason] = LISTENER_REFUSALS.connect;
    writeHttpRefusal(socket, status, reason, { Allow: 'GET, HEAD' });
  }

  /**
   * Nest's own not-found handler answers `Cannot GET <url>`: the query, a
   * token included, echoed into the body. This one names the path only.
   */
  override setNotFoundHandler(_nestHandler: unknown, prefix?: string): void {
    super.setNotFoundHandler((req: IncomingMessage, res: ServerResponse) => {
      const path = pathOnly(req.url ?? '/');
      const body = JSON.stringify({ message: `Cannot ${req.method} ${path}`, error: 'Not Found', statusCode: 404 });
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end(body);
    }, prefix);
  }
}
