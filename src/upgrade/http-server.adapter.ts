import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { Express } from 'express';
import { answerPlain } from './raw-response.js';
import { adoptTargetAuthority } from './request-target.js';

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
        // Express would read an unreadable target with the legacy `url.parse`, which prints it (query and token included) in a deprecation warning.
        if (!adoptTargetAuthority(req)) return answerPlain(res, 400, 'malformed request target', true);
        if (this.front === null || !this.front(req, res)) express(req, res);
      },
    );
    this.httpServer = server;
  }
}
