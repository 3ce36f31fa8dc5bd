import { Controller, Get, UseGuards } from '@nestjs/common';
import { InternalAuthGuard } from './internal-auth.guard.js';
import { ReplicaIdentity } from './replica-identity.js';

/**
 * Replica-to-replica endpoints, all behind `InternalAuthGuard`. Never route
 * `/_cluster/` from the public load balancer (see docs/scaling.md); requests
 * for a tunnel subdomain never get here, the tunnel router claims them first.
 */
@Controller('_cluster')
@UseGuards(InternalAuthGuard)
export class ClusterController {
  constructor(private readonly identity: ReplicaIdentity) {}

  /** Which replica answered: lets a peer check that an advertise URL reaches the replica it names. */
  @Get('ping')
  ping(): { replica: string } {
    return { replica: this.identity.id };
  }
}
