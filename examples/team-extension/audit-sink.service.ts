import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Counter, type Registry } from 'prom-client';
import { WsproxyEvents, type AdmissionRefusedEvent, type RelayClosedEvent, type RelayOpenedEvent } from '../../src/common/events.js';
import { METRICS_REGISTRY } from '../../src/metrics/metrics.registry.js';
import { TEAM_EXTENSION_OPTIONS, type AuditEvent, type AuditRecord, type TeamExtensionOptions } from './team-extension.options.js';

/**
 * An audit sink: one record per relay start, relay end and refused admission,
 * from the service's lifecycle events (never per frame), plus a series of its
 * own on the app's Prometheus registry.
 */
@Injectable()
export class AuditSink implements OnModuleInit, OnModuleDestroy {
  private readonly write: (record: AuditRecord) => void;
  private readonly records: Counter<'event'>;
  private readonly failures: Counter;

  private readonly onOpened = (e: RelayOpenedEvent): void =>
    this.emit('relay.opened', { id: e.id, user: e.user, clientIp: e.clientIp, target: e.target });
  private readonly onClosed = (e: RelayClosedEvent): void =>
    this.emit('relay.closed', { id: e.id, user: e.user, target: e.target, bytesUp: e.bytesUp, bytesDown: e.bytesDown, closeCode: e.closeCode });
  private readonly onRefused = (e: AdmissionRefusedEvent): void =>
    this.emit('admission.refused', { route: e.route, kind: e.kind, status: e.status, clientIp: e.clientIp });

  constructor(
    private readonly events: WsproxyEvents,
    @Inject(METRICS_REGISTRY) registry: Registry,
    @Inject(TEAM_EXTENSION_OPTIONS) options: TeamExtensionOptions,
  ) {
    this.write = options.write ?? ((r) => process.stdout.write(JSON.stringify(r) + '\n'));
    this.records = new Counter({ name: 'team_audit_records_total', help: 'Audit records written.', labelNames: ['event'] as const, registers: [registry] });
    this.failures = new Counter({ name: 'team_audit_write_failures_total', help: 'Audit records the sink failed to write.', registers: [registry] });
  }

  onModuleInit(): void {
    this.events.on('relay.opened', this.onOpened);
    this.events.on('relay.closed', this.onClosed);
    this.events.on('admission.refused', this.onRefused);
  }

  onModuleDestroy(): void {
    this.events.off('relay.opened', this.onOpened);
    this.events.off('relay.closed', this.onClosed);
    this.events.off('admission.refused', this.onRefused);
  }

  /**
   * Listeners run synchronously inside the relay's own code path: stay cheap,
   * and never let an exception escape into it.
   */
  private emit(event: AuditEvent, fields: Record<string, unknown>): void {
    try {
      this.write({ ...fields, at: new Date().toISOString(), event });
      this.records.inc({ event });
    } catch {
      this.failures.inc();
    }
  }
}
