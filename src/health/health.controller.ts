import { Controller, Get, OnModuleInit } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { DrainService } from '../lifecycle/drain.service.js';
import { ReadinessRegistry } from './readiness.registry.js';

/**
 * `GET /health`: liveness — the process serves HTTP; depends on nothing outside
 * it, so a blip of a shared dependency never restarts every replica.
 * `GET /health/ready`: readiness — 503 from the first moment of a shutdown and
 * while any contributed check is down.
 */
@Controller('health')
export class HealthController implements OnModuleInit {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly drain: DrainService,
    private readonly readiness: ReadinessRegistry,
  ) {}

  onModuleInit(): void {
    this.readiness.add(() => {
      const check = this.indicators.check('drain');
      return this.drain.draining ? check.down({ message: 'draining' }) : check.up({ live: this.drain.liveCount });
    });
  }

  /**
   * Not run through Terminus: its executor reports `shutting_down` (503) for
   * every check from the start of a shutdown, and a liveness probe failing
   * during a drain would get the pod killed before its relays end.
   */
  @Get()
  liveness(): { status: 'ok'; info: Record<string, never>; error: Record<string, never>; details: Record<string, never> } {
    return { status: 'ok', info: {}, error: {}, details: {} };
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check(this.readiness.all());
  }
}
