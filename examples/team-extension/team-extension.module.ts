import { Module, type DynamicModule } from '@nestjs/common';
import { AuditSink } from './audit-sink.service.js';
import { TEAM_EXTENSION_OPTIONS, type TeamExtensionOptions } from './team-extension.options.js';
import { UserDenyListRule } from './user-deny-list.rule.js';

/**
 * A team's own module: an admission rule and an audit sink, added to wsproxy
 * with `startWsproxy({ config, imports: [TeamExtensionModule.forRoot(...)] })`
 * and no edit to the relay. `AdmissionService`, `WsproxyEvents` and
 * `METRICS_REGISTRY` come from wsproxy's global modules.
 */
@Module({})
export class TeamExtensionModule {
  static forRoot(options: TeamExtensionOptions): DynamicModule {
    return {
      module: TeamExtensionModule,
      providers: [{ provide: TEAM_EXTENSION_OPTIONS, useValue: options }, UserDenyListRule, AuditSink],
    };
  }
}
