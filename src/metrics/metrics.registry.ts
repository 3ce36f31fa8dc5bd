import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * Injection token of this app instance's Prometheus registry. Every metric of
 * the service lives here, never on prom-client's global default registry, so
 * several apps in one process (the tests) keep separate counts. A team's module
 * or the cluster mode adds its own series with
 * `@Inject(METRICS_REGISTRY) registry: Registry` and `registers: [registry]`.
 */
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');

/** A fresh registry holding Node's default process metrics (CPU, memory, event loop, GC, handles). */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
