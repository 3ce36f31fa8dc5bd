import { All, Controller, Param, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { TunnelHttpRouter } from '../../tunnel/http/tunnel-http.router.js';
import { answerPlain } from '../../tunnel/http/response-sink.js';
import { SUBDOMAIN_RE } from '../../tunnel/state/subdomain.js';
import { InternalAuthGuard } from '../internal-auth.guard.js';
import { endToEndHeaders, FORWARDED_CLIENT_IP_HEADER, FORWARDED_HOST_HEADER } from './internal-headers.js';

/**
 * The owner's half of HTTP forwarded between replicas: a signed request
 * (`InternalAuthGuard`: 401 without the header, 403 with a bad one) for one of
 * this replica's tunnels, answered exactly as if it had arrived here. Never
 * reachable through a tunnel subdomain: the tunnel router claims those hosts
 * before any route.
 */
@Controller('_cluster/tunnels')
@UseGuards(InternalAuthGuard)
export class ClusterTunnelsController {
  constructor(private readonly router: TunnelHttpRouter) {}

  @All(':subdomain/http')
  http(@Param('subdomain') subdomain: string, @Req() req: Request, @Res() res: Response): void {
    const path = typeof req.query.path === 'string' ? req.query.path : '';
    const host = req.headers[FORWARDED_HOST_HEADER];
    const clientIp = req.headers[FORWARDED_CLIENT_IP_HEADER];
    if (!SUBDOMAIN_RE.test(subdomain) || !path.startsWith('/') || typeof host !== 'string' || typeof clientIp !== 'string') {
      return answerPlain(res, 400, 'bad forwarded request');
    }
    const rawHeaders = ['host', host, ...endToEndHeaders(req.rawHeaders)];
    this.router.serveForwarded(req, res, subdomain, { clientIp, host, path, rawHeaders });
  }
}
