import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import { authEnabled } from '../config/config.schema.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { ReadinessRegistry } from '../health/readiness.registry.js';
import { JwksService } from './jwks.service.js';

/** How long a readiness probe waits for the JWKS fetch it starts: under Kubernetes' default probe timeout (1 s). */
const PROBE_FETCH_WAIT_MS = 800;

/**
 * `/health/ready` reports `jwks` down while authentication is on and no key can
 * verify a token (never loaded, withdrawn, or stale past `JWKS_MAX_STALE_S`):
 * such a replica answers every connection 503, and a rollout with a wrong
 * `CLERK_JWKS_URL` should stop at its first pod instead of completing.
 */
@Injectable()
export class JwksReadiness implements OnModuleInit {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly jwks: JwksService,
    private readonly readiness: ReadinessRegistry,
  ) {}

  onModuleInit(): void {
    if (!authEnabled(this.config)) return;
    this.readiness.add(
      async (): Promise<HealthIndicatorResult<'jwks'>> =>
        (await this.jwks.readyToVerify(PROBE_FETCH_WAIT_MS))
          ? { jwks: { status: 'up', keys: this.jwks.status().keyCount } }
          : { jwks: { status: 'down', message: 'no usable JWKS key: tokens cannot be verified' } },
    );
  }
}
