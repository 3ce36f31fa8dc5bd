import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import type { HttpResponseSink } from '../../tunnel/core/http-exchange.js';
import type { HeaderList, ResponseHead } from '../../tunnel/core/stream-types.js';
import { responseHeadersForRequester } from '../../tunnel/http/header-hygiene.js';
import { declaredLength } from '../../tunnel/http/response-sink.js';
import { statusHasNoContent } from '../../common/response-body.js';
import { matchTunnelHost } from '../../tunnel/http/tunnel-host.js';
import { R, V2_DATA_CHUNK, V2_MAX_FRAME_BYTES, V2_MAX_PAYLOAD } from '../../tunnel/protocol/v2.js';
import { TunnelService } from '../../tunnel/tunnel.service.js';
import { V2ClientSession, type V2ClientStream } from '../../tunnel/v2/client-session.js';
import { FrameSender } from '../../tunnel/core/frame-sender.js';
import { V2_WS_HIGH_WATER } from '../../tunnel/v2/v2-wire.js';
import { DrainService } from '../../lifecycle/drain.service.js';
import { UpgradeRouter } from '../../upgrade/upgrade-router.service.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import type { RawUpgradeHandler } from '../../upgrade/upgrade-route.js';
import { acceptingServer } from '../../upgrade/accepting-server.js';
import { ipLimitKey } from '../../limits/ip-limit-key.js';
import { MUX_PATH, MUX_PLAIN_HEADER, MUX_SUBDOMAIN_HEADER, channelKeepalive } from './cluster-mux.js';
import { signedUpgrade } from './internal-upgrade.js';

/**
 * The owner's end of the channel other replicas forward tunnel HTTP on
 * (`cluster-mux.ts`): a signed WebSocket upgrade to `/_cluster/mux` (401
 * without the signature, 403 with a bad one; never on a tunnel host). Each
 * stream is served by this replica's tunnel for its `:subdomain`, exactly as
 * a request arriving here would be; the entry replica has already applied
 * the per-IP limit, the body limit and the request header hygiene.
 */
@Injectable()
export class ClusterMuxEndpoint implements OnApplicationShutdown {
  private readonly logger = new Logger('ClusterMuxEndpoint');
  private readonly wss = acceptingServer({ maxPayload: V2_MAX_FRAME_BYTES });
  private readonly channels = new Set<WebSocket>();
  /** Channels accepted so far (tests, diagnostics). */
  private accepted = 0;
  /** The drain is over: channels are closed and no new ones are taken. */
  private closed = false;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly tunnels: TunnelService,
    drain: DrainService,
    upgrades: UpgradeRouter,
  ) {
    this.wss.on('error', (err) => this.logger.error(`cluster channel server error: ${err.message}`));
    upgrades.registerHostMatcher({ match: (req) => this.match(req) });
    // Channels serve this replica's tunnels while they drain (and new ones are taken: an entry
    // that lost its channel still reaches them), then go before the server is disposed (its close waits for them).
    drain.onDrained(() => {
      this.closed = true;
      this.dropChannels();
    });
  }

  /** Channels accepted since start (tests, diagnostics). */
  get channelsAccepted(): number {
    return this.accepted;
  }

  /** Channels from other replicas (tests, diagnostics). */
  get channelCount(): number {
    return this.channels.size;
  }

  onApplicationShutdown(): void {
    this.dropChannels();
  }

  /** Drops every channel at once (shutdown; tests: the other replicas open new ones). */
  dropChannels(): void {
    for (const ws of this.channels) ws.terminate();
  }

  private match(req: IncomingMessage): RawUpgradeHandler | null {
    if (req.url !== MUX_PATH || matchTunnelHost(req.headers.host, this.config.tunnelDomain).kind !== 'other') return null;
    return (_req, socket, head) => this.accept(req, socket, head);
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!signedUpgrade(this.config.clusterSecret, req, socket)) return;
    if (this.closed) return writeHttpRefusal(socket, 503, 'server is shutting down');
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serveChannel(ws));
    } catch (err) {
      this.logger.warn(`cluster channel handshake failed: ${(err as Error).message}`);
      socket.destroy();
    }
  }

  private serveChannel(ws: WebSocket): void {
    this.channels.add(ws);
    this.accepted++;
    const sender = new FrameSender(ws, V2_WS_HIGH_WATER, () => session.transportDrained());
    const session = new V2ClientSession(
      { send: (frame) => sender.send(frame), transportReady: () => sender.ready },
      {
        http: (stream) => this.serveStream(stream),
        websocket: (stream) => stream.reset('not a channel for WebSockets', R.REFUSED),
        tcp: (stream) => stream.reset('not a channel for TCP', R.REFUSED),
      },
      { window: this.config.tunnelV2WindowBytes },
    );
    let lastSeen = Date.now();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      lastSeen = Date.now();
      if (isBinary) session.receive(data);
    });
    // The entry pings every heartbeat: a channel silent for longer is from a replica that is gone.
    ws.on('ping', () => void (lastSeen = Date.now()));
    const { pingEveryMs, silentAfterMs } = channelKeepalive(this.config.clusterHeartbeatMs);
    const watch = setInterval(() => {
      if (Date.now() - lastSeen > silentAfterMs) ws.terminate();
    }, pingEveryMs);
    watch.unref();
    ws.on('error', () => ws.terminate());
    ws.once('close', (code: number, reason: Buffer) => {
      clearInterval(watch);
      this.channels.delete(ws);
      session.transportClosed(code, reason.toString());
    });
  }

  private serveStream(stream: V2ClientStream): void {
    const request = stream.request!;
    // The entry puts `:subdomain` first; no other pseudo-header goes to a tunnel client.
    const first = request.headers[0];
    const subdomain = first && first[0] === MUX_SUBDOMAIN_HEADER ? first[1] : '';
    const headers = request.headers.filter(([name]) => !name.startsWith(':'));
    const session = this.tunnels.find(subdomain);
    const sink = new ChannelResponseSink(stream, request.method === 'HEAD');
    // The requester's IP as the entry replica set it (its X-Forwarded-For, last in the head), counted as the per-IP
    // limits count it (an IPv6 requester per IPV6_LIMIT_PREFIX), as for a request arriving here: else a v1 tunnel's
    // body share would be per IPv6 address for requests entering at another replica.
    const forwardedFor = headers.findLast(([name]) => name === 'x-forwarded-for')?.[1];
    const requester = forwardedFor === undefined ? undefined : ipLimitKey(forwardedFor, this.config.ipv6LimitPrefix);
    const body = session?.live ? session.openHttp({ method: request.method, path: request.path, headers, bodyless: request.bodyless, requester }, sink) : null;
    if (!body) return sink.fail(404, 'tunnel not found');
    stream.onreset = () => body.abort();
    stream.onend = () => body.end();
    stream.ondata = (chunk) => {
      if (!body.write(chunk)) stream.pause();
    };
    body.onWritable(() => stream.resume());
  }
}

/** Room left in a RESPONSE payload besides the headers: the JSON around them and an inline body (at most a DATA chunk). */
const HEAD_SLACK = V2_DATA_CHUNK + 4096;

/**
 * A tunnel's response, sent back on the channel as the stream's response.
 * The headers are cleaned here as the entry will clean them (so no tunnel
 * client can put a pseudo-header or an oversized head on a channel that
 * carries other tunnels' requests), and the head waits for the body until the
 * end of the turn, so a response complete at once is one frame.
 */
class ChannelResponseSink implements HttpResponseSink {
  /** The channel carries the client's END on to the entry, whose own sink knows when its requester has it all. */
  readonly complete = false;
  private responded = false;
  private pending: { head: ResponseHead; headers: HeaderList; chunks: Uint8Array[] } | null = null;
  private readonly flushPending = (): void => {
    if (this.pending) this.sendHead(false);
  };

  /** `isHead`: the request is a HEAD, whose answer carries the length a GET would have. */
  constructor(
    private readonly stream: V2ClientStream,
    private readonly isHead = false,
  ) {}

  head(head: ResponseHead): boolean {
    const cleaned = responseHeadersForRequester(head.headers);
    // A HEAD answer carries the Content-Length a GET would have (RFC 9110 §9.3.2), which only the
    // service's own header tells: cleaning drops it, so it goes on the channel for the entry, which
    // reads it as the owner's NodeResponseSink does (and cleans it off any other answer).
    const length = this.isHead && !statusHasNoContent(head.status) ? declaredLength(head.headers) : null;
    const headers: HeaderList = length === null ? cleaned : [...cleaned, ['content-length', length]];
    if (!fitsOneFrame(headers)) {
      this.fail(502, 'response head too large');
      return false;
    }
    this.responded = true;
    this.pending = { head, headers, chunks: [] };
    setImmediate(this.flushPending);
    return true;
  }

  data(chunk: Uint8Array, flushed?: () => void): boolean {
    // Held from here on by the channel's v2 stream and its credit, not by the budget of the codec.
    flushed?.();
    if (this.pending) {
      this.pending.chunks.push(chunk);
      return true;
    }
    return this.stream.write(chunk);
  }

  whenDrained(cb: () => void): void {
    this.stream.onwritable = () => {
      this.stream.onwritable = null;
      cb();
    };
  }

  end(): void {
    if (this.pending) this.sendHead(true);
    else this.stream.end();
  }

  fail(status: number, reason: string): void {
    if (this.responded) {
      this.pending = null;
      return this.stream.reset(reason, R.INTERNAL_ERROR);
    }
    this.responded = true;
    this.stream.respond(status, [[MUX_PLAIN_HEADER, reason]], { length: 0, end: true });
  }

  private sendHead(end: boolean): void {
    const { head, headers, chunks } = this.pending!;
    this.pending = null;
    const body = chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    this.stream.respond(head.status, headers, { length: head.bodyLength, body, end });
  }
}

/** Whether cleaned headers fit in one RESPONSE frame (JSON-escaped, a byte of Latin-1 can take two). */
function fitsOneFrame(headers: HeaderList): boolean {
  let size = 0;
  for (const [name, value] of headers) size += 2 * (name.length + value.length) + 8;
  return size <= V2_MAX_PAYLOAD - HEAD_SLACK;
}
