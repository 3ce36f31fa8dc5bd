import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { Refusal } from '../../src/common/refusal.js';
import { AdmissionService } from '../../src/upgrade/admission.service.js';
import { TEAM_EXTENSION_OPTIONS, type TeamExtensionOptions } from './team-extension.options.js';

/**
 * An extra admission rule: refuses listed users on every WebSocket endpoint
 * (`/relay`, `/tunnel`). Rules run after authentication and before the
 * connection limits, so a refused user never takes a slot.
 */
@Injectable()
export class UserDenyListRule implements OnModuleInit {
  private readonly denied: ReadonlySet<string>;

  constructor(
    private readonly admission: AdmissionService,
    @Inject(TEAM_EXTENSION_OPTIONS) options: TeamExtensionOptions,
  ) {
    this.denied = new Set(options.deniedUsers);
  }

  onModuleInit(): void {
    this.admission.addRule((_ctx, identity) => {
      // A Refusal is answered like every built-in one: 403 + reason, or 4403 with errors=close,
      // and counted in wsproxy_admission_refusals_total under its kind.
      if (this.denied.has(identity.userId)) throw new Refusal(403, 'user is suspended', 'auth');
    });
  }
}
