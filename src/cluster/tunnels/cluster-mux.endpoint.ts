import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocketServer, type WebSocket } from 'ws';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import type { HttpResponseSink } from '../../tunnel/core/http-exchange.js';
import type { ResponseHead } from '../../tunnel/core/stream-types.js';
import { FrameBatcher } from '../../tunnel/core/frame-batcher.js';
import { matchTunnelHost } from '../../tunnel/http/tunnel-host.js';
import { R, V2_MAX_FRAME_BYTES } from '../../tunnel/protocol/v2.js';
import { TunnelService } from '../../tunnel/tunnel.service.js';
import { V2ClientSession, type V2ClientStream } from '../../tunnel/v2/client-session.js';
import { V2_WS_HIGH_WATER } from '../../tunnel/v2/v2-wire.js';
import { UpgradeRouter } from '../../upgrade/upgrade-router.service.js';
import type { RawUpgradeHandler } from '../../upgrade/upgrade-route.js';
import { MUX_PATH, MUX_PLAIN_HEADER, MUX_SUBDOMAIN_HEADER } from './cluster-mux.js';
import { signedUpgrade } from './internal-upgrade.js';

const BINARY = { binary: true } as const;

/**
 * The owner's end of the channel other replicas forward tunnel HTTP on
 * (`cluster-mux.ts`): a signed WebSocket upgrade to `/_cluster/mux` (401
 * without the signature, 403 with a bad one; never on a tunnel host). Each
 * stream is served by this replica's tunnel for its `:subdomain`, exactly as
 * a request arriving here would be; the entry replica has already applied
 * the per-IP limit, the body limit and the request header hygiene.
 */
@Injectable()
export class ClusterMuxEndpoint implements BeforeApplicationShutdown {
  private readonly logger = new Logger('ClusterMuxEndpoint');
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: V2_MAX_FRAME_BYTES });
  private readonly channels = new Set<WebSocket>();

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly tunnels: TunnelService,
    upgrades: UpgradeRouter,
  ) {
    this.wss.on('error', (err) => this.logger.error(`cluster channel server error: ${err.message}`));
    upgrades.registerHostMatcher({ match: (req) => this.match(req) });
  }

  /** Channels from other replicas (tests, diagnostics). */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Before Nest's dispose: the HTTP server's close waits for every connection, these included. */
  beforeApplicationShutdown(): void {
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
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serveChannel(ws));
    } catch (err) {
      this.logger.warn(`cluster channel handshake failed: ${(err as Error).message}`);
      socket.destroy();
    }
  }

  private serveChannel(ws: WebSocket): void {
    this.channels.add(ws);
    const batcher = new FrameBatcher(ws);
    let congested = false;
    const afterFlush = (): void => {
      if (!congested || ws.bufferedAmount >= V2_WS_HIGH_WATER) return;
      congested = false;
      session.transportDrained();
    };
    const session = new V2ClientSession(
      {
        send: (frame) => {
          if (ws.readyState !== ws.OPEN) return;
          if (!congested && ws.bufferedAmount + frame.length >= V2_WS_HIGH_WATER) congested = true;
          batcher.before(frame.length);
          if (congested) ws.send(frame, BINARY, afterFlush);
          else ws.send(frame, BINARY);
        },
        transportReady: () => !congested,
      },
      {
        http: (stream) => this.serveStream(stream),
        websocket: (stream) => stream.reset('not a channel for WebSockets', R.REFUSED),
        tcp: (stream) => stream.reset('not a channel for TCP', R.REFUSED),
      },
      { window: this.config.tunnelV2WindowBytes },
    );
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) session.receive(data);
    });
    ws.on('error', () => ws.terminate());
    ws.once('close', (code: number, reason: Buffer) => {
      this.channels.delete(ws);
      session.transportClosed(code, reason.toString());
    });
  }

  private serveStream(stream: V2ClientStream): void {
    const request = stream.request!;
    let subdomain = '';
    const headers: [string, string][] = [];
    for (const [name, value] of request.headers) {
      if (name === MUX_SUBDOMAIN_HEADER) subdomain = value;
      else headers.push([name, value]);
    }
    const session = this.tunnels.find(subdomain);
    const sink = new ChannelResponseSink(stream);
    const body = session?.live ? session.openHttp({ method: request.method, path: request.path, headers, bodyless: request.bodyless }, sink) : null;
    if (!body) return sink.fail(404, 'tunnel not found');
    stream.onreset = () => body.abort();
    stream.onend = () => body.end();
    stream.ondata = (chunk) => {
      if (!body.write(chunk)) stream.pause();
    };
    body.onWritable(() => stream.resume());
  }
}

/** A tunnel's response, sent back on the channel as the stream's response. */
class ChannelResponseSink implements HttpResponseSink {
  private responded = false;

  constructor(private readonly stream: V2ClientStream) {}

  head(head: ResponseHead): boolean {
    this.responded = true;
    this.stream.respond(head.status, head.headers, { length: head.bodyLength });
    return true;
  }

  data(chunk: Uint8Array): boolean {
    return this.stream.write(chunk);
  }

  whenDrained(cb: () => void): void {
    this.stream.onwritable = () => {
      this.stream.onwritable = null;
      cb();
    };
  }

  end(): void {
    this.stream.end();
  }

  fail(status: number, reason: string): void {
    if (this.responded) return this.stream.reset(reason, R.INTERNAL_ERROR);
    this.responded = true;
    this.stream.respond(status, [[MUX_PLAIN_HEADER, reason]], { length: 0, end: true });
  }
}
