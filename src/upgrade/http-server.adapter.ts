import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { Express } from 'express';

/** Bounds for every connection of the public listener, upgrades included. */
export interface ListenerBounds {
  /** Time a client has to send complete request headers (slowloris). */
  readonly headersTimeoutMs: number;
  /** Largest request head accepted; larger gets 431 (header floods). */
  readonly maxHeaderBytes: number;
}

/**
 * Nest's Express adapter, creating the HTTP server with the bounds above. They
 * have to be given at creation: Node checks `headersTimeout` on a timer whose
 * period (`connectionsCheckingInterval`) cannot be changed afterwards, and its
 * default of 30 s would let a slow handshake live far past the timeout.
 */
export class BoundedExpressAdapter extends ExpressAdapter {
  private front: ((req: IncomingMessage, res: ServerResponse) => boolean) | null = null;

  constructor(
    instance: Express,
    private readonly bounds: ListenerBounds,
  ) {
    super(instance);
  }

  /** Requests this handler takes (returns true) never reach Express. */
  setFrontHandler(handler: (req: IncomingMessage, res: ServerResponse) => boolean): void {
    this.front = handler;
  }

  override initHttpServer(): void {
    const express = this.getInstance<(req: IncomingMessage, res: ServerResponse) => void>();
    const server: Server = createServer(
      {
        headersTimeout: this.bounds.headersTimeoutMs,
        requestTimeout: Math.max(this.bounds.headersTimeoutMs, 60_000),
        connectionsCheckingInterval: Math.min(1000, this.bounds.headersTimeoutMs),
        maxHeaderSize: this.bounds.maxHeaderBytes,
        keepAliveTimeout: 5_000,
      },
      (req, res) => {
        if (!isReadableTarget(req.url)) return refuseTarget(res);
        if (this.front === null || !this.front(req, res)) express(req, res);
      },
    );
    this.httpServer = server;
  }
}

/**
 * Whether a request target can be read: origin-form (`/…`), or an absolute-form
 * URL the WHATWG parser accepts. Express reads other targets with the legacy
 * `url.parse`, which prints them (query and token included) to stderr in a
 * deprecation warning, and routes may throw on them.
 */
function isReadableTarget(target: string | undefined): boolean {
  if (target === undefined || target.charCodeAt(0) === 0x2f /* / */ || target === '*') return true;
  return URL.canParse(target);
}

function refuseTarget(res: ServerResponse): void {
  res.statusCode = 400;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('connection', 'close');
  res.end('malformed request target\n');
}
