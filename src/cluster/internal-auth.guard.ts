import { ForbiddenException, Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request, Response } from 'express';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { CLUSTER_AUTH_CHALLENGE, CLUSTER_AUTH_HEADER, verifyClusterRequest } from './internal-auth.js';

/**
 * Guards the replica-to-replica endpoints under `/_cluster/`: 401 without
 * credentials, 403 with wrong, stale or malformed ones (see internal-auth.ts).
 */
@Injectable()
export class InternalAuthGuard implements CanActivate {
  constructor(@Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request>();
    const result = verifyClusterRequest(this.config.clusterSecret, req.headers[CLUSTER_AUTH_HEADER], req.method, req.originalUrl);
    if (result === 'missing') {
      const res = context.switchToHttp().getResponse<Response>();
      if (!res.headersSent) res.set(CLUSTER_AUTH_CHALLENGE);
      throw new UnauthorizedException('cluster authentication required');
    }
    if (result === 'invalid') throw new ForbiddenException('cluster authentication failed');
    return true;
  }
}
