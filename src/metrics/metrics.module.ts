import { Global, Module } from '@nestjs/common';
import { LimitsModule } from '../limits/limits.module.js';
import { RelayModule } from '../relay/relay.module.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsListener } from './metrics-listener.service.js';
import { createMetricsRegistry, METRICS_REGISTRY } from './metrics.registry.js';
import { WsproxyMetrics } from './wsproxy-metrics.service.js';

/**
 * Prometheus metrics: `GET /metrics` (or its own listener with `METRICS_PORT`).
 * Global so that other modules (cluster mode, a team's module) can add series
 * to the same per-app registry through `METRICS_REGISTRY`.
 */
@Global()
@Module({
  imports: [RelayModule, LimitsModule],
  controllers: [MetricsController],
  providers: [{ provide: METRICS_REGISTRY, useFactory: createMetricsRegistry }, WsproxyMetrics, MetricsListener],
  exports: [METRICS_REGISTRY],
})
export class MetricsModule {}
