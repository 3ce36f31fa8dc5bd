import { Global, Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { LimitsModule } from '../limits/limits.module.js';
import { AdmissionService } from './admission.service.js';
import { FrontRequestHandlers } from './front-requests.js';
import { KeepaliveService } from './keepalive.service.js';
import { UpgradeRouter } from './upgrade-router.service.js';

/** The upgrade router, the shared admission front half and keepalive, for every WebSocket endpoint. */
@Global()
@Module({
  imports: [AuthModule, LimitsModule],
  providers: [UpgradeRouter, AdmissionService, KeepaliveService, FrontRequestHandlers],
  exports: [UpgradeRouter, AdmissionService, KeepaliveService, FrontRequestHandlers, LimitsModule, AuthModule],
})
export class UpgradeModule {}
