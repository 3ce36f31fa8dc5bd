import { Module } from '@nestjs/common';
import { BlocklistService } from './blocklist.service.js';
import { TargetResolver } from './resolver.js';
import { TargetPolicyService } from './target-policy.service.js';

/**
 * Target policy of the relay: blocklist, allowlist and the one DNS lookup per
 * target. Needs the global configuration module. Override `TargetResolver` in
 * tests to resolve names without DNS.
 */
@Module({
  providers: [BlocklistService, TargetResolver, TargetPolicyService],
  exports: [BlocklistService, TargetResolver, TargetPolicyService],
})
export class PolicyModule {}
