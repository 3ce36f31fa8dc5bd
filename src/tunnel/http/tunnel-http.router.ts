import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { WsproxyEvents } from '../../common/events.js';
import { declaresNoBody } from '../../common/request-body.js';
import { resetSocket } from '../../common/reset-socket.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { ClientIpResolver } from '../../upgrade/client-ip.js';
import { FrontRequestHandlers } from '../../upgrade/front-requests.js';
import { offersWebSocket } from '../../upgrade/handshake.js';
import { BODY_TIMEOUT_REASON, answerPlain, writeHttpRefusal } from '../../upgrade/raw-response.js';
import { UpgradeRouter } from '../../upgrade/upgrade-router.service.js';
import type { RawUpgradeHandler } from '../../upgrade/upgrade-route.js';
import type { HeaderList } from '../core/stream-types.js';
import type { TunnelSession } from '../core/tunnel-session.js';
import { v1MaxBodyBytes } from '../v1/v1-limits.js';
import { TunnelService } from '../tunnel.service.js';
import { requestHeadersForClient } from './header-hygiene.js';
import { InFlightCounter } from './in-flight-counter.js';
import { NodeResponseSink, type PlainRefusals } from './response-sink.js';
import { BodyStallTimer } from './body-stall.js';
import { closeWithConnection } from './queued-response.js';
import { matchTunnelHost } from './tunnel-host.js';
import { REMOTE_TUNNEL_HTTP, REMOTE_TUNNEL_WEBSOCKET, type RemoteTunnelHttp, type RemoteTunnelWebSocket } from './remote-tunnel.js';
import { TunnelWebSocketFront, type WebSocketRequest } from './tunnel-websocket.front.js';
import { ipLimitKey } from '../../limits/ip-limit-key.js';
import { ChunkJoiner } from './chunk-joiner.js';
import { setReadableMark } from '../../common/socket-bounds.js';

/**
 * Routes requests for `*.TUNNEL_DOMAIN` to tunnels, ahead of every other route:
 * plain HTTP through a front request handler (before Express), upgrades
 * through a host matcher, so a tunnel host never reaches `/health`, `/relay`
 * or `/tunnel`. In cluster mode,
 * a subdomain whose tunnel is on another replica goes to that replica.
 */
@Injectable()
export class TunnelHttpRouter {
  private readonly ips: ClientIpResolver;
  private readonly inFlight: InFlightCounter;
  private readonly domain: string;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly tunnels: TunnelService,
    private readonly events: WsproxyEvents,
    front: FrontRequestHandlers,
    upgrades: UpgradeRouter,
    /** Cluster mode: serves subdomains whose tunnel is on another replica. */
    @Optional() @Inject(REMOTE_TUNNEL_HTTP) private readonly remote: RemoteTunnelHttp | undefined,
    private readonly webSockets: TunnelWebSocketFront,
    /** Cluster mode: WebSocket upgrades for subdomains whose tunnel is on another replica. */
    @Optional() @Inject(REMOTE_TUNNEL_WEBSOCKET) private readonly remoteWebSockets: RemoteTunnelWebSocket | undefined,
  ) {
    this.domain = config.tunnelDomain;
    this.ips = new ClientIpResolver(config.trustedProxies);
    this.inFlight = new InFlightCounter(config.maxTunnelHttpPerIp, (ip) => ipLimitKey(ip, config.ipv6LimitPrefix));
    front.add((req, res) => this.handle(req, res));
    upgrades.registerHostMatcher({ match: (req) => this.matchUpgrade(req) });
  }

  /** Requests in flight from `ip` into tunnels (tests, diagnostics). */
  inFlightFrom(ip: string): number {
    return this.inFlight.get(ip);
  }

  /** True when the request is for the tunnel domain (and answered here). */
  private handle(req: IncomingMessage, res: ServerResponse): boolean {
    const match = matchTunnelHost(req.headers.host, this.domain);
    if (match.kind === 'other') return false;
    this.route(req, res, match.kind === 'tunnel' ? match.subdomain : null);
    return true;
  }

  private route(req: IncomingMessage, res: ServerResponse, subdomain: string | null): void {
    let forwarded = false;
    closeWithConnection(req, res);
    res.once('close', () => this.events.emit('tunnel.http', { status: res.headersSent ? res.statusCode : 499, forwarded }));
    if (subdomain === null) return answerPlain(res, 404, 'not found');
    const session = this.tunnels.find(subdomain);
    if (!session?.live && !this.remote) return answerPlain(res, 404, 'tunnel not found');

    const ip = this.ips.resolve(req);
    // No peer address: the requester has already reset the connection.
    if (ip === '') return void res.destroy();
    if (!this.inFlight.tryAcquire(ip)) return answerPlain(res, 429, 'too many requests from this IP', true);
    res.once('close', () => this.inFlight.release(ip));

    if (declaresMore(req, this.config.tunnelMaxBodyBytes)) return answerPlain(res, 413, 'request body too large', true);
    const coding = transferCodingProblem(req);
    if (coding === 400) return answerPlain(res, 400, 'malformed HTTP request', true);
    if (coding === 501) return answerPlain(res, 501, 'transfer coding not supported', true);
    const path = originFormPath(req.url);
    if (path === null) return answerPlain(res, 400, 'bad request target', true);
    const fwd = { clientIp: ip, host: req.headers.host ?? '' };
    if (!session?.live) {
      const onForwarded = (): void => void (forwarded = true);
      const serveThrough = (through: TunnelSession, headersFirst: HeaderList, plain: PlainRefusals): void =>
        this.serve(req, res, through, path, req.rawHeaders, fwd, { headersFirst, plain });
      return this.remote!.forward({ req, res, subdomain, clientIp: ip, path, onForwarded, serveThrough });
    }
    this.serve(req, res, session, path, req.rawHeaders, fwd);
  }

  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    session: TunnelSession,
    path: string,
    rawHeaders: string[],
    fwd: { clientIp: string; host: string },
    through?: { headersFirst: HeaderList; plain: PlainRefusals },
  ): void {
    // v1 carries a body inside one JSON string, which has a ceiling of its own.
    const max = session.wire.version === 1 ? v1MaxBodyBytes(this.config.tunnelMaxBodyBytes) : this.config.tunnelMaxBodyBytes;
    if (declaresMore(req, max)) return answerPlain(res, 413, 'request body too large', true);
    const sink = new NodeResponseSink(req, res, through?.plain);
    dropStuckRequester(res, this.config.tunnelRequesterStallMs);
    const cleaned = requestHeadersForClient(rawHeaders, {
      clientIp: fwd.clientIp,
      proto: this.config.tunnelPublicScheme,
      host: fwd.host,
    });
    const headers = through ? [...through.headersFirst, ...cleaned] : cleaned;
    const bodyless = declaresNoBody(req);
    const body = session.openHttp({ method: req.method ?? 'GET', path, headers, bodyless, requester: ipLimitKey(fwd.clientIp, this.config.ipv6LimitPrefix) }, sink);
    // A channel to another replica that closed in the meantime is that replica not answering.
    if (!body) return through ? answerPlain(res, 502, 'tunnel owner unreachable') : answerPlain(res, 404, 'tunnel not found');

    let size = 0;
    let refused = false;
    let discarding = false;
    // A requester that stops sending its body would hold its per-IP slot and the stream: 408, and the connection ends.
    const stall = bodyless
      ? null
      : new BodyStallTimer(this.config.tunnelRequesterStallMs, () => {
          // A response under way is cut short: a reset (see answerPlain).
          if (refused || discarding || res.headersSent) return void (res.headersSent ? resetSocket(req.socket) : req.socket.destroy());
          refused = true;
          body.abort();
          sink.fail(408, BODY_TIMEOUT_REASON);
        });
    stall?.reading();
    body.onWritable(() => {
      req.resume();
      if (!req.complete) stall?.reading();
    });
    // Paused for a tunnel without credit, the request stops taking parsed chunks at once: at Node's mark
    // (16 KiB) it would hold up to 16 384 one-byte chunks of a chunked body, a Buffer each.
    setReadableMark(req, 0);
    let aborted = false;
    const joiner = new ChunkJoiner((chunk) => {
      if (refused || discarding || aborted) return;
      if (!body.write(chunk)) {
        req.pause();
        stall?.stop();
      }
    });
    req.on('data', (chunk: Buffer) => {
      stall?.reading();
      size += chunk.length;
      if (discarding) {
        if (size > max) req.socket.destroy();
        return;
      }
      if (refused) return;
      if (size > max) {
        refused = true;
        body.abort();
        sink.fail(413, 'request body too large');
        return;
      }
      joiner.push(chunk);
    });
    req.on('end', () => {
      stall?.stop();
      joiner.flush();
      if (!refused && !discarding) body.end();
    });
    res.once('close', () => {
      stall?.stop();
      if (res.writableFinished) return;
      aborted = true;
      body.abort();
    });
    // An early answer (the client responded before the upload ended): the rest
    // of the body is read and dropped, as Node does for a request nobody reads,
    // so the connection goes on to the requester's next request. The tunnel's
    // request is aborted, not ended: an END after a cut body would hand the
    // client's server a shorter body as if it were the whole one.
    res.once('finish', () => {
      if (req.complete || refused) return;
      discarding = true;
      body.abort();
      req.resume();
    });
  }

  /**
   * Serves a WebSocket upgrade another replica forwarded (cluster mode) as if
   * it had arrived here: `req` and `socket` are the forwarded upgrade, the
   * rest (`request`) is the requester's, as the entry replica saw it.
   */
  serveForwardedUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, subdomain: string, request: WebSocketRequest): void {
    this.upgradeLocal(this.tunnels.find(subdomain), req, socket, head, request, true);
  }

  private matchUpgrade(req: IncomingMessage): RawUpgradeHandler | null {
    const match = matchTunnelHost(req.headers.host, this.domain);
    if (match.kind === 'other') return null;
    return (_req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (match.kind === 'invalid') return this.refuseUpgrade(socket, 404, 'not found');
      // Another protocol than WebSocket (`h2c`: curl --http2, Java's HttpClient on http URLs): the plain request it is.
      if (!offersWebSocket(req)) return this.serveIgnoringUpgrade(req, socket, match.subdomain);
      // An absolute-form target (RFC 9112 §3.2.2) goes on as origin-form, as a plain request's does.
      const path = originFormPath(req.url);
      if (path === null) return this.refuseUpgrade(socket, 400, 'bad request target');
      req.url = path;
      const session = this.tunnels.find(match.subdomain);
      const clientIp = this.ips.resolve(req);
      if (clientIp === '') return void socket.destroy();
      if (!session?.live && this.remoteWebSockets) return this.upgradeRemote(req, socket, head, match.subdomain, clientIp);
      const request = { clientIp, host: req.headers.host ?? '', path: req.url ?? '', rawHeaders: req.rawHeaders };
      this.upgradeLocal(session, req, socket, head, request, false);
    };
  }

  /**
   * A request that asked to upgrade to another protocol than WebSocket, served
   * as the request it is, ignoring the Upgrade (RFC 9110 §7.8), as the proxy's
   * own routes do: refusing it (or answering that WebSockets need protocol v2)
   * would fail every `curl --http2` to an http tunnel URL. Node has detached
   * its parser, so the connection closes after the response, and a body it
   * would have read is refused instead. The tunnel's own bounds apply (response
   * timeout, requester stall: the socket's timeout is wired back to the
   * response), not a fixed deadline.
   */
  private serveIgnoringUpgrade(req: IncomingMessage, socket: Duplex, subdomain: string): void {
    if (!declaresNoBody(req)) return this.refuseUpgrade(socket, 400, 'Upgrade not supported on a request with a body');
    const s = socket as Socket;
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    // Attached until the socket closes, which is what emits the response's 'close'.
    res.assignSocket(s);
    res.once('finish', () => s.destroySoon());
    // The parser is gone: the socket is read here, so that a requester that leaves (FIN, as Node's
    // listener treats it, or a reset) closes the response and gives its slot back; later bytes are dropped.
    s.on('data', () => undefined);
    s.once('end', () => s.destroy());
    // Node took its socket timeout handler off with the upgrade: put back what it does for a plain request,
    // so the requester stall timer (`res.setTimeout`) still drops a requester that stops reading.
    s.on('timeout', () => {
      if (!res.emit('timeout', s)) s.destroy();
    });
    // …and its drain handler: a streamed answer waits for 'drain' on the response when the requester is slow.
    s.on('drain', () => {
      if (res.socket === s && !res.writableFinished && res.writableNeedDrain) res.emit('drain');
    });
    // Nothing will end the (bodyless) request but this.
    if (!req.complete) req.push(null);
    this.route(req, res, subdomain);
  }

  /**
   * Refuses an upgrade to a tunnel host before any tunnel sees it. Counted in
   * `wsproxy_tunnel_http_requests_total` by its status, as the same refusal of a
   * plain request is (a WebSocket scan of tunnel hosts shows up as 4xx too); not
   * here for one another replica forwarded (`forwarded`): that replica counts
   * the status it passes on.
   */
  private refuseUpgrade(socket: Duplex, status: number, reason: string, forwarded = false): void {
    if (!forwarded) this.events.emit('tunnel.http', { status, forwarded: false });
    writeHttpRefusal(socket, status, reason);
  }

  /** An upgrade for a tunnel of this replica: v2 only, one per-IP slot for the WebSocket's life. */
  private upgradeLocal(
    session: TunnelSession | undefined,
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    request: WebSocketRequest,
    forwarded: boolean,
  ): void {
    if (!session?.live) return this.refuseUpgrade(socket, 404, 'tunnel not found', forwarded);
    // Protocol v2 carries an upgrade as a WebSocket stream; v1 has no way to.
    if (!session.wire.carriesWebSockets) return this.refuseUpgrade(socket, 501, 'WebSockets through this tunnel need tunnel protocol v2', forwarded);
    const ip = request.clientIp;
    if (!this.inFlight.tryAcquire(ip)) return this.refuseUpgrade(socket, 429, 'too many requests from this IP', forwarded);
    this.webSockets.forward(session, req, socket, head, { ...request, forwarded, release: () => this.inFlight.release(ip) });
  }

  /**
   * An upgrade for a tunnel held elsewhere (cluster mode), forwarded to its
   * owner. The per-IP slot is held only until the owner answers: it bounds
   * the lookups and owner connections one IP has pending here, while the
   * owner counts the WebSocket itself, as for any upgrade it serves.
   */
  private upgradeRemote(req: IncomingMessage, socket: Duplex, head: Buffer, subdomain: string, clientIp: string): void {
    if (!this.inFlight.tryAcquire(clientIp)) return this.refuseUpgrade(socket, 429, 'too many requests from this IP');
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      this.inFlight.release(clientIp);
    };
    this.remoteWebSockets!.forward({ req, socket, head, subdomain, clientIp, release });
  }
}

/**
 * Ends the exchange of a requester that stops reading: once bytes wait for it
 * and it takes none for `ms` (`TUNNEL_REQUESTER_STALL_MS`), its socket is
 * destroyed, with the per-IP slot and the buffered response. An idle stream
 * (a long poll, an SSE stream between events) has nothing waiting and is left alone.
 */
function dropStuckRequester(res: ServerResponse, ms: number): void {
  res.setTimeout(ms, () => {
    const socket = res.socket;
    // Its response is cut short: a reset (see answerPlain).
    if (socket && socket.writableLength > 0) resetSocket(socket);
  });
}

/**
 * What a request's Transfer-Encoding makes of it, RFC 9112 §6.1/§6.3 (codings compared case-insensitively, empty
 * list elements ignored as RFC 9110 §5.6.1 asks):
 * - 400 when `chunked` is not the final coding (`gzip` alone): the body's length cannot be determined, and the
 *   parser refuses the body right after; the requester gets the 400 RFC 9112 §6.3 asks for, not a 501;
 * - 501 for a coding besides `chunked` (`gzip, chunked`): Node takes the chunked framing off and hands over bytes
 *   still coded, which the tunnel's service could not tell from plain ones once the hop-by-hop header is gone;
 * - null for `chunked` alone, or no Transfer-Encoding.
 */
function transferCodingProblem(req: IncomingMessage): 400 | 501 | null {
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return null;
  const codings = te
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '');
  if (codings.at(-1) !== 'chunked') return 400;
  return codings.length === 1 ? null : 501;
}

/** Whether the request's Content-Length is over `max` (413 before reading any of it). */
function declaresMore(req: IncomingMessage, max: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > max;
}

/**
 * The path and query of a request target; absolute-form is reduced to it,
 * anything else is `null`. No form has a fragment (RFC 9112 §3.2): one would
 * reach the service as part of its path, read otherwise than by the proxy.
 */
function originFormPath(url: string | undefined): string | null {
  if (!url || url.includes('#')) return null;
  if (url.startsWith('/')) return url;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return u.pathname + u.search;
  } catch {
    return null;
  }
}
