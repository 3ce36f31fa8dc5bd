import { Controller, Get, Header, Inject, NotFoundException } from '@nestjs/common';
import type { Registry } from 'prom-client';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { METRICS_REGISTRY } from './metrics.registry.js';

/** The Prometheus text exposition format of prom-client's registry. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * `GET /metrics` on the main listener, unless `METRICS_PORT` moves it to its
 * own listener (`MetricsListener`); then this route answers 404 like any
 * unknown path, so the public port never exposes it.
 */
@Controller('metrics')
export class MetricsController {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
  ) {}

  @Get()
  @Header('Content-Type', METRICS_CONTENT_TYPE)
  @Header('Cache-Control', 'no-store')
  async metrics(): Promise<string> {
    if (this.config.metricsPort !== null) throw new NotFoundException('Cannot GET /metrics');
    return this.registry.metrics();
  }
}
