import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ResumeService } from '../resume/resume.service.js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { WsproxyEvents, type WsproxyEventMap } from '../common/events.js';
import { RelayService } from '../relay/relay.service.js';
import { METRICS_REGISTRY } from './metrics.registry.js';
import { bytesUpOf } from '../relay/relay-closed.js';
import { REFUSAL_LABELS, refusalLabel, statusClass } from './refusal-label.js';
import { LISTENER_REFUSAL_LABELS } from '../upgrade/listener-refusals.js';
import { LimitsService } from '../limits/limits.service.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

type Listener<K extends keyof WsproxyEventMap> = (...args: WsproxyEventMap[K]) => void;

/** Dial latencies from a loopback connect (sub-millisecond) to `DIAL_TIMEOUT_MS`. */
const DIAL_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Redis round trips: sub-millisecond on a LAN, a second is already an outage. */
const REDIS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The service's Prometheus series. Everything is fed by lifecycle events
 * (`WsproxyEvents`) or read at scrape time, never per frame: relay bytes are
 * the totals of ended relays plus the live relays' target-socket counters,
 * summed when Prometheus scrapes.
 */
@Injectable()
export class WsproxyMetrics implements OnModuleInit, OnApplicationShutdown {
  private readonly unsubscribe: (() => void)[] = [];
  /** Bytes of relays that have ended (client→target, target→client). */
  private endedUp = 0;
  private endedDown = 0;
  private tunnelsLive = 0;

  private readonly relaysOpened: Counter;
  private readonly relaysEnded: Counter;
  private readonly tunnelsOpened: Counter;
  private readonly tunnelsEnded: Counter;
  private readonly refusals: Counter<'reason'>;
  private readonly listenerRefusals: Counter<'reason'>;
  private readonly dials: Histogram<'result'>;
  private readonly jwksFetches: Counter;
  private readonly jwksFailures: Counter;
  private readonly tunnelHttp: Counter<'status_class'>;
  private readonly tunnelTcp: Counter;
  private readonly resume: Counter<'event'>;
  private readonly redis: Histogram<'op' | 'result'>;
  private readonly heartbeats: Counter;
  private readonly heartbeatFailures: Counter;
  private readonly forwardedHttp: Counter;
  private readonly forwardedTcp: Counter;

  constructor(
    @Inject(METRICS_REGISTRY) registry: Registry,
    private readonly events: WsproxyEvents,
    private readonly relays: RelayService,
    private readonly resumable: ResumeService,
    private readonly limits: LimitsService,
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
  ) {
    const registers = [registry];
    const self = this;

    new Gauge({
      name: 'wsproxy_relays_active',
      help: 'Relays open now.',
      registers,
      collect() {
        this.set(self.relays.liveCount + self.resumable.liveSessions().length);
      },
    });
    // MAX_CONNECTIONS: this replica's own cap (also in cluster mode), and what of it is taken now.
    new Gauge({
      name: 'wsproxy_connection_slots_in_use',
      help: 'MAX_CONNECTIONS slots this replica holds now: relays (a resumable one also while detached), tunnels and admissions in progress.',
      registers,
      collect() {
        this.set(self.limits.slotsInUse);
      },
    });
    new Gauge({
      name: 'wsproxy_connection_slots_limit',
      help: 'MAX_CONNECTIONS: the most WebSocket connections this replica holds at once; beyond it upgrades are refused 503.',
      registers,
    }).set(config.maxConnections);
    this.relaysOpened = new Counter({ name: 'wsproxy_relays_opened_total', help: 'Relays opened (WebSocket accepted, target connected).', registers });
    this.relaysEnded = new Counter({ name: 'wsproxy_relays_ended_total', help: 'Relays that have ended.', registers });
    new Counter({
      name: 'wsproxy_relay_bytes_total',
      help: 'Bytes relayed: direction="up" client to target, "down" target to client (ended relays plus live ones at scrape time).',
      labelNames: ['direction'] as const,
      registers,
      collect() {
        let up = self.endedUp;
        let down = self.endedDown;
        for (const r of self.relays.liveRelays()) {
          up += bytesUpOf(r.socket);
          down += r.pipe.bytesDown();
        }
        for (const s of self.resumable.liveSessions()) {
          up += bytesUpOf(s.setup.socket);
          down += s.deliveredBytes;
        }
        this.reset();
        this.inc({ direction: 'up' }, up);
        this.inc({ direction: 'down' }, down);
      },
    });

    new Gauge({
      name: 'wsproxy_tunnels_active',
      help: 'Tunnels open now.',
      registers,
      collect() {
        this.set(self.tunnelsLive);
      },
    });
    this.tunnelsOpened = new Counter({ name: 'wsproxy_tunnels_opened_total', help: 'Tunnels opened.', registers });
    this.tunnelsEnded = new Counter({ name: 'wsproxy_tunnels_ended_total', help: 'Tunnels that have ended.', registers });

    this.refusals = new Counter({
      name: 'wsproxy_admission_refusals_total',
      help: 'WebSocket admissions refused, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    for (const reason of REFUSAL_LABELS) this.refusals.inc({ reason }, 0);
    this.listenerRefusals = new Counter({
      name: 'wsproxy_http_refusals_total',
      help: 'Requests and upgrades the listener refused before any route (unreadable, too slow, too large, CONNECT, repeated or missing Host), by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    for (const reason of LISTENER_REFUSAL_LABELS) this.listenerRefusals.inc({ reason }, 0);

    this.dials = new Histogram({
      name: 'wsproxy_dial_duration_seconds',
      help: 'Time to connect to a relay target, by result (ok, error).',
      labelNames: ['result'] as const,
      buckets: DIAL_BUCKETS,
      registers,
    });
    this.dials.zero({ result: 'ok' });
    this.dials.zero({ result: 'error' });

    this.jwksFetches = new Counter({ name: 'wsproxy_jwks_fetches_total', help: 'JWKS fetch attempts.', registers });
    this.jwksFailures = new Counter({ name: 'wsproxy_jwks_fetch_failures_total', help: 'JWKS fetch attempts that failed.', registers });

    this.tunnelHttp = new Counter({
      name: 'wsproxy_tunnel_http_requests_total',
      help: 'HTTP requests to tunnel hosts, by the status class they got (404 for a tunnel that does not exist included).',
      labelNames: ['status_class'] as const,
      registers,
    });
    for (const c of ['1xx', '2xx', '3xx', '4xx', '5xx']) this.tunnelHttp.inc({ status_class: c }, 0);
    this.tunnelTcp = new Counter({ name: 'wsproxy_tunnel_tcp_connections_total', help: 'Raw TCP connections accepted on tunnel ports.', registers });

    this.resume = new Counter({
      name: 'wsproxy_resume_sessions_total',
      help: 'Resumable relay sessions by event (detached, reattached, expired).',
      labelNames: ['event'] as const,
      registers,
    });
    for (const event of ['detached', 'reattached', 'expired']) this.resume.inc({ event }, 0);

    // Cluster mode (REDIS_URL); these stay at zero on a single node.
    this.redis = new Histogram({
      name: 'wsproxy_cluster_redis_duration_seconds',
      help: 'Round trips to the cluster state store (Redis), by operation and result (ok, error).',
      labelNames: ['op', 'result'] as const,
      buckets: REDIS_BUCKETS,
      registers,
    });
    this.heartbeats = new Counter({ name: 'wsproxy_cluster_heartbeats_total', help: 'Cluster heartbeats attempted.', registers });
    this.heartbeatFailures = new Counter({ name: 'wsproxy_cluster_heartbeat_failures_total', help: 'Cluster heartbeats that failed.', registers });
    this.forwardedHttp = new Counter({
      name: 'wsproxy_cluster_forwarded_http_requests_total',
      help: 'Tunnel HTTP requests that crossed replicas (also counted in wsproxy_tunnel_http_requests_total).',
      registers,
    });
    this.forwardedTcp = new Counter({
      name: 'wsproxy_cluster_forwarded_tcp_connections_total',
      help: 'Raw TCP tunnel connections that crossed replicas (also counted in wsproxy_tunnel_tcp_connections_total).',
      registers,
    });
  }

  onModuleInit(): void {
    this.on('relay.opened', () => this.relaysOpened.inc());
    this.on('relay.closed', (e) => {
      this.endedUp += e.bytesUp;
      this.endedDown += e.bytesDown;
      this.relaysEnded.inc();
    });
    this.on('tunnel.opened', () => {
      this.tunnelsLive++;
      this.tunnelsOpened.inc();
    });
    this.on('tunnel.closed', () => {
      this.tunnelsLive = Math.max(0, this.tunnelsLive - 1);
      this.tunnelsEnded.inc();
    });
    this.on('admission.refused', (e) => this.refusals.inc({ reason: refusalLabel(e.kind) }));
    this.on('request.refused', (e) => this.listenerRefusals.inc({ reason: e.reason }));
    this.on('dial', (e) => this.dials.observe({ result: e.ok ? 'ok' : 'error' }, e.seconds));
    this.on('jwks.fetch', (e) => {
      this.jwksFetches.inc();
      if (!e.ok) this.jwksFailures.inc();
    });
    this.on('tunnel.http', (e) => {
      this.tunnelHttp.inc({ status_class: statusClass(e.status) });
      if (e.forwarded) this.forwardedHttp.inc();
    });
    this.on('tunnel.tcp', (e) => {
      this.tunnelTcp.inc();
      if (e.forwarded) this.forwardedTcp.inc();
    });
    this.on('resume.detached', () => this.resume.inc({ event: 'detached' }));
    this.on('resume.reattached', () => this.resume.inc({ event: 'reattached' }));
    this.on('resume.expired', () => this.resume.inc({ event: 'expired' }));
    this.on('cluster.redis', (e) => this.redis.observe({ op: e.op, result: e.ok ? 'ok' : 'error' }, e.seconds));
    this.on('cluster.heartbeat', (e) => {
      this.heartbeats.inc();
      if (!e.ok) this.heartbeatFailures.inc();
    });
  }

  /** After the drain (`beforeApplicationShutdown`), so what happens during it is counted. */
  onApplicationShutdown(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private on<K extends keyof WsproxyEventMap>(event: K, listener: Listener<K>): void {
    // EventEmitter's typed overloads do not resolve for a generic key; the map above keeps it sound.
    const emitter = this.events as unknown as { on(e: K, l: Listener<K>): void; off(e: K, l: Listener<K>): void };
    emitter.on(event, listener);
    this.unsubscribe.push(() => emitter.off(event, listener));
  }

}
