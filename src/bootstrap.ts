import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import express from 'express';
import { AppModule, type AppModuleOptions } from './app.module.js';
import { WsproxyEvents } from './common/events.js';
import { configWarnings } from './config/config-warnings.js';
import { DrainService } from './lifecycle/drain.service.js';
import { createPino, NestPinoLogger } from './logging/app-logger.js';
import { BoundedExpressAdapter } from './upgrade/http-server.adapter.js';
import { UpgradeAdapter } from './upgrade/upgrade.adapter.js';
import { FrontRequestHandlers } from './upgrade/front-requests.js';

/** A started wsproxy: the Nest app and the address it listens on. */
export interface RunningApp {
  readonly app: NestExpressApplication;
  readonly port: number;
  readonly server: Server;
}

/**
 * Creates, configures and starts the application on `config.port` (0 = any).
 * Shared by `main.ts` and the tests, so tests boot exactly what production runs.
 */
export async function startWsproxy(options: AppModuleOptions): Promise<RunningApp> {
  const { config } = options;
  const pino = createPino(config.logLevel);
  for (const warning of configWarnings(config)) pino.warn({ event: 'config_warning' }, warning);
  const expressApp = express();
  expressApp.disable('x-powered-by');
  const httpAdapter = new BoundedExpressAdapter(expressApp, {
    headersTimeoutMs: config.handshakeTimeoutMs,
    maxHeaderBytes: config.maxHeaderBytes,
  });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(options), httpAdapter, {
    logger: new NestPinoLogger(pino),
    bodyParser: false,
    abortOnError: false,
  });
  // Tunnel subdomains are answered before Express sees them.
  const front = app.get(FrontRequestHandlers);
  httpAdapter.setFrontHandler((req, res) => front.dispatch(req, res));
  const events = app.get(WsproxyEvents);
  httpAdapter.setRefusalListener((reason) => events.emit('request.refused', { reason }));
  const drain = app.get(DrainService);
  httpAdapter.setDrainingCheck(() => drain.draining);
  app.useWebSocketAdapter(new UpgradeAdapter(app));
  await app.init();
  const server = app.getHttpServer() as Server;
  await new Promise<void>((resolve, reject) => {
    // The operator's fix is in BIND_HOST or PORT: the error says which address it could not take.
    const failed = (err: Error): void =>
      reject(new Error(`cannot listen on BIND_HOST=${config.bindHost || '(all interfaces)'} PORT=${config.port}: ${err.message}`));
    server.once('error', failed);
    server.listen(config.port, config.bindHost || undefined, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return { app, port, server };
}
