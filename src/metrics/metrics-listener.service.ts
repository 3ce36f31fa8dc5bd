import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Registry } from 'prom-client';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { METRICS_CONTENT_TYPE } from './metrics.controller.js';
import { METRICS_REGISTRY } from './metrics.registry.js';
import { offersWebSocket } from '../upgrade/handshake.js';

/**
 * A WebSocket upgrade request (`Connection: upgrade` and `Upgrade: websocket`). With no 'upgrade' listener Node
 * hands it to the request handler as a plain request, which would answer it 200 with a whole scrape.
 */
function asksForWebSocket(req: IncomingMessage): boolean {
  const connection = req.headers.connection ?? '';
  return offersWebSocket(req) && connection.split(',').some((t) => t.trim().toLowerCase() === 'upgrade');
}

/**
 * The separate `/metrics` listener when `METRICS_PORT` is set (same `BIND_HOST`
 * as the main listener). It starts with the app, so a port already in use
 * fails startup, and stops last, so the drain stays observable.
 */
@Injectable()
export class MetricsListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: Server | null = null;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(PINO) private readonly log: Pino,
  ) {}

  /** The bound port, or null when metrics share the main listener. */
  get port(): number | null {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? (addr as AddressInfo).port : null;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.metricsPort === null) return;
    const { handshakeTimeoutMs, maxHeaderBytes } = this.config;
    // The bounds of the main listener (README: MAX_HEADER_BYTES, HANDSHAKE_TIMEOUT_MS), not Node's defaults
    // (16 KiB heads, and a head deadline checked only every 30 s).
    const bounds = {
      maxHeaderSize: maxHeaderBytes,
      headersTimeout: handshakeTimeoutMs,
      requestTimeout: Math.max(30_000, handshakeTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, handshakeTimeoutMs),
    };
    const server = createServer(bounds, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      // No WebSocket endpoint here: refused as the main listener refuses an upgrade to a path no gateway serves
      // (README, Endpoints), not served as a scrape. Another protocol (h2c) is ignored and served (RFC 9110 §7.8).
      if (asksForWebSocket(req)) {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end('not found\n');
        return;
      }
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          this.log.error({ event: 'metrics_failed', err }, 'collecting metrics failed');
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void =>
        reject(new Error(`cannot listen on BIND_HOST=${this.config.bindHost || '(all interfaces)'} METRICS_PORT=${this.config.metricsPort}: ${err.message}`));
      server.once('error', failed);
      server.listen(this.config.metricsPort ?? 0, this.config.bindHost || undefined, () => {
        server.off('error', failed);
        resolve();
      });
    });
    this.server = server;
    this.log.info({ event: 'metrics_listening', port: this.port }, `metrics on port ${this.port}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
