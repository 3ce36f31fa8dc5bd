import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { declaresNoBody } from '../common/request-body.js';
import { checkHandshake, offersWebSocket, UNSUPPORTED_VERSION } from './handshake.js';
import type { Duplex } from 'node:stream';
import type { INestApplication } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { AbstractWsAdapter } from '@nestjs/websockets';
import type { WebSocket, WebSocketServer } from 'ws';
import { selectResponseProtocol } from '../auth/token-carriers.js';
import { ChurnSet } from '../common/churn-map.js';
import { explainProtocolCloses } from '../common/protocol-close.js';
import { isRefusal, Refusal } from '../common/refusal.js';
import { WsproxyEvents } from '../common/events.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { DrainService } from '../lifecycle/drain.service.js';
import { redactUrl } from '../logging/redact.js';
import { SocketGoneSignal } from './client-gone.js';
import { ClientIpResolver } from './client-ip.js';
import type { QueryParams } from './query-params.js';
import { LISTENER_REFUSALS, type ListenerRefusal } from './listener-refusals.js';
import { acceptingServer } from './accepting-server.js';
import { responseInFlight, writeHttpRefusal } from './raw-response.js';
import { frontRequestProblem, parseRequestTarget } from './request-target.js';
import { UpgradeRouter, setAdmission } from './upgrade-router.service.js';
import type { Admitted, UpgradeContext } from './upgrade-route.js';

const draining = (): Refusal => new Refusal(503, 'server is draining', 'draining');

/**
 * Headers an upgrade refusal's status calls for besides the `Retry-After` of a
 * 503 (`writeHttpRefusal` adds that to every one): a 401 names the scheme to
 * authenticate with (RFC 9110 §11.6.1: a 401 MUST carry WWW-Authenticate, as
 * AuthGuard's do), a 426 the version spoken (RFC 6455 §4.4).
 */
function refusalHeaders(status: number): Record<string, string> {
  if (status === 401) return { 'WWW-Authenticate': 'Bearer' };
  if (status === 426) return { 'Sec-WebSocket-Version': '13' };
  return {};
}

/**
 * The WebSocket adapter that owns the HTTP server's `upgrade` event.
 *
 * Nest's stock `WsAdapter` destroys upgrades to unknown paths without an answer,
 * completes handshakes before any admission could run, and JSON-parses every
 * frame. A relay needs the opposite: route by Host and path, run the async
 * admission (params → origin → auth → limits → target policy → dial) while the
 * request is still plain HTTP, answer refusals with real statuses, and hand raw
 * frames to the gateway untouched.
 */
export class UpgradeAdapter extends AbstractWsAdapter {
  private readonly logger = new Logger('UpgradeAdapter');
  private readonly router: UpgradeRouter;
  private readonly drain: DrainService;
  private readonly events: WsproxyEvents;
  private readonly config: WsproxyConfigType;
  private readonly clientIps: ClientIpResolver;
  private readonly servers: WebSocketServer[] = [];
  /** Admissions in flight, each with how to refuse it as the drain starts. */
  private readonly admitting = new ChurnSet<() => void>();
  private readonly listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => this.onUpgrade(req, socket, head);

  constructor(app: INestApplication) {
    super(app);
    this.router = app.get(UpgradeRouter);
    this.drain = app.get(DrainService);
    this.events = app.get(WsproxyEvents);
    this.config = app.get<WsproxyConfigType>(wsproxyConfig.KEY);
    this.clientIps = new ClientIpResolver(this.config.trustedProxies);
    (this.httpServer as Server).on('upgrade', this.listener);
    // An admission in flight when the drain starts (a JWKS fetch, a dial) would otherwise be admitted into
    // the drain or, once the servers close, get ws's bare 503, and its pending dial would hold the exit.
    this.drain.onStart(() => {
      for (const refuse of this.admitting.values()) refuse();
    });
  }

  override create(_port: number, options: { path?: string } = {}): WebSocketServer {
    const path = options.path ?? '/';
    const server = acceptingServer({
      maxPayload: this.config.maxMessageBytes,
      // Answer a non-token protocol, as browsers require when they offered any.
      handleProtocols: (protocols) => selectResponseProtocol(protocols),
    });
    server.on('error', (err) => this.logger.error(`ws server error: ${err.message}`));
    this.router.attachServer(path, server);
    this.servers.push(server);
    return server;
  }

  /** Gateways read raw frames themselves; no JSON message parsing. */
  override bindMessageHandlers(): void {}

  override bindClientConnect(server: WebSocketServer, callback: (ws: WebSocket, req: IncomingMessage) => void): void {
    server.on('connection', callback);
  }

  override bindClientDisconnect(): void {}

  override async close(server: WebSocketServer): Promise<void> {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  override async dispose(): Promise<void> {
    (this.httpServer as Server).off('upgrade', this.listener);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    // Pipelined behind a response still being made on this connection: any answer here would cut into it.
    if (responseInFlight(socket)) return void socket.destroy();
    const problem = frontRequestProblem(req);
    if (problem) return this.refuseAtListener(socket, problem);
    const hostHandler = this.router.matchHost(req);
    if (hostHandler) {
      hostHandler(req, socket, head);
      return;
    }
    if (!offersWebSocket(req)) return this.serveIgnoringUpgrade(req, socket);
    const target = parseRequestTarget(req.url);
    if (!target) return this.refuseAtListener(socket, 'malformed_target');
    const { path, query } = target;
    const endpoint = this.router.resolvePath(path);
    const clientIp = this.clientIps.resolve(req);
    // No peer address: the client reset the connection right after its request (Node had read both
    // at once). Nobody is left to answer, and admitting it would count it under an empty address.
    if (clientIp === '') return void socket.destroy();
    if (!endpoint) {
      this.refuse(socket, req, path, query, clientIp, new Refusal(404, 'not found', 'not_found'), null);
      return;
    }
    if (this.drain.draining) {
      this.refuse(socket, req, path, query, clientIp, draining(), endpoint.server, head);
      return;
    }
    const handshakeProblem = checkHandshake(req);
    if (handshakeProblem) {
      const status = handshakeProblem === UNSUPPORTED_VERSION ? 426 : 400;
      this.refuse(socket, req, path, query, clientIp, new Refusal(status, handshakeProblem, 'bad_request'), null);
      return;
    }
    const signal = new SocketGoneSignal(socket);
    const ctx: UpgradeContext = { req, socket, path, query, clientIp, signal };
    let refusedByDrain = false;
    // Answered now; the signal stops a pending dial and any step still to come, and what admission
    // took is given back when it settles.
    const inFlight = this.admitting.add(() => {
      refusedByDrain = true;
      const early = signal.releaseInto(head);
      signal.abort();
      this.refuse(socket, req, path, query, clientIp, draining(), endpoint.server, early);
    });
    endpoint.route.admit(ctx).then(
      (admitted) => {
        this.admitting.delete(inFlight);
        if (refusedByDrain) return admitted.abort();
        endpoint.server.options.maxPayload = admitted.maxPayload ?? endpoint.route.maxPayload ?? this.config.maxMessageBytes;
        this.complete(endpoint.server, req, socket, signal.releaseInto(head), admitted);
      },
      (err: unknown) => {
        this.admitting.delete(inFlight);
        if (refusedByDrain) return;
        const early = signal.releaseInto(head);
        const refusal = isRefusal(err) ? err : this.internalError(err, req);
        this.refuse(socket, req, path, query, clientIp, refusal, endpoint.server, early);
      },
    );
  }

  private complete(server: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer, admitted: Admitted): void {
    if (socket.destroyed || !socket.writable) {
      admitted.abort();
      return;
    }
    setAdmission(req, admitted);
    let accepted = false;
    try {
      server.handleUpgrade(req, socket, head, (ws) => {
        accepted = true;
        explainProtocolCloses(ws);
        server.emit('connection', ws, req);
      });
    } catch (err) {
      this.logger.error(`handshake failed: ${(err as Error).message}`);
      socket.destroy();
    }
    // `ws` ends some handshakes itself without calling back (a client that
    // half-closed during admission, a server already closing): what admission
    // took (the limit slot, the dialled target) goes back here.
    if (!accepted) admitted.abort();
  }

  /**
   * Serves a request that asked for another protocol than WebSocket (`h2c`,
   * which `curl --http2` offers on every plain-http request) as the request it
   * is, ignoring the Upgrade (RFC 9110 §7.8): Node hands every Upgrade to this
   * listener, and no route would see it. The parser has been detached, so the
   * connection closes after the response, and a body it would have read is
   * refused instead. Tunnel hosts never get here (their router takes every
   * upgrade): a tunnel's response can outlast any fixed deadline.
   */
  private serveIgnoringUpgrade(req: IncomingMessage, socket: Duplex): void {
    if (!declaresNoBody(req)) return writeHttpRefusal(socket, 400, 'Upgrade not supported on a request with a body');
    const s = socket as Socket;
    // Node took its own timers off the socket with the upgrade: the whole exchange gets the handshake's deadline.
    const deadline = setTimeout(() => s.destroy(), this.config.handshakeTimeoutMs);
    deadline.unref();
    s.once('close', () => clearTimeout(deadline));
    try {
      const res = new ServerResponse(req);
      res.shouldKeepAlive = false;
      // Attached until the socket closes, which is what emits the response's 'close'.
      res.assignSocket(s);
      res.once('finish', () => s.destroySoon());
      (this.httpServer as Server).emit('request', req, res);
    } catch (err) {
      this.logger.error(`serving a request that asked for another protocol failed: ${(err as Error).message}`);
      s.destroy();
    }
  }

  /**
   * Answers a refusal: an HTTP status with a plain-text reason, or — when the
   * client asked with `errors=close` and the handshake itself is valid — an
   * accepted WebSocket closed at once with `4000 + status`, since a browser
   * cannot read the status of a failed handshake.
   */
  /** A refusal before routing, made as the HTTP listener makes it for a plain request. */
  private refuseAtListener(socket: Duplex, refusal: ListenerRefusal): void {
    this.events.emit('request.refused', { reason: refusal });
    const [status, reason] = LISTENER_REFUSALS[refusal];
    writeHttpRefusal(socket, status, reason);
  }

  private refuse(
    socket: Duplex,
    req: IncomingMessage,
    path: string,
    query: QueryParams,
    clientIp: string,
    refusal: Refusal,
    server: WebSocketServer | null,
    head?: Buffer,
  ): void {
    this.events.emit('admission.refused', { route: path, kind: refusal.kind, status: refusal.status, clientIp });
    this.logger.debug(`refused ${redactUrl(req.url)} from ${clientIp}: ${refusal.status} ${refusal.reason}`);
    if (socket.destroyed) return;
    const extra = refusalHeaders(refusal.status);
    if (server && query.get('errors') === 'close' && !checkHandshake(req)) {
      let upgraded = false;
      try {
        server.handleUpgrade(req, socket, head ?? Buffer.alloc(0), (ws) => {
          upgraded = true;
          ws.on('error', () => ws.terminate());
          ws.close(refusal.closeCode, refusal.closeReason);
          setTimeout(() => ws.terminate(), 5000).unref();
        });
        return;
      } catch {
        // Once the 101 is out, an HTTP answer would corrupt the stream.
        if (upgraded) return void socket.destroy();
      }
    }
    writeHttpRefusal(socket, refusal.status, refusal.reason, extra);
  }

  private internalError(err: unknown, req: IncomingMessage): Refusal {
    this.logger.error(`admission failed for ${redactUrl(req.url)}: ${err instanceof Error ? err.message : String(err)}`);
    return new Refusal(500, 'internal error', 'internal');
  }
}
