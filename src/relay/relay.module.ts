import { Module } from '@nestjs/common';
import { PolicyModule } from '../policy/policy.module.js';
import { ResumeModule } from '../resume/resume.module.js';
import { RelayGateway } from './relay.gateway.js';
import { RelayService } from './relay.service.js';
import { TcpDialer } from './tcp-dialer.js';

@Module({
  imports: [PolicyModule, ResumeModule],
  providers: [RelayGateway, RelayService, TcpDialer],
  exports: [RelayService, TcpDialer, ResumeModule],
})
export class RelayModule {}
