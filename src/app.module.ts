import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule, registerAs } from '@nestjs/config';
import { ClusterModule } from './cluster/cluster.module.js';
import type { WsproxyConfig } from './config/config.schema.js';
import { HealthModule } from './health/health.module.js';
import { LifecycleModule } from './lifecycle/lifecycle.module.js';
import { LoggingModule } from './logging/logging.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { RelayModule } from './relay/relay.module.js';
import { TunnelModule } from './tunnel/tunnel.module.js';
import { UpgradeModule } from './upgrade/upgrade.module.js';

/** Extra modules a deployment adds (a team's admission rule, an audit sink): see README. */
export interface AppModuleOptions {
  readonly config: WsproxyConfig;
  readonly imports?: DynamicModule['imports'];
}

/**
 * The root module. Configuration is parsed and validated once, before Nest
 * starts (see `main.ts`), and provided under the typed `wsproxy` namespace.
 */
@Module({})
export class AppModule {
  static forRoot(options: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          ignoreEnvFile: true,
          isGlobal: true,
          load: [registerAs('wsproxy', () => options.config)],
        }),
        LoggingModule,
        LifecycleModule,
        HealthModule,
        // Cluster mode (REDIS_URL): shared counters; without it nothing of it is loaded.
        ...(options.config.redisUrl ? [ClusterModule] : []),
        UpgradeModule,
        RelayModule,
        TunnelModule,
        MetricsModule,
        ...(options.imports ?? []),
      ],
    };
  }
}
