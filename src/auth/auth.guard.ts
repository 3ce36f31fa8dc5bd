import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpException, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { isRefusal, RETRY_AFTER_S } from '../common/refusal.js';
import { parseRequestTarget } from '../upgrade/request-target.js';
import { AuthService, type AuthIdentity } from './auth.service.js';

/** A request that passed `AuthGuard`. */
export type AuthenticatedRequest = IncomingMessage & { user?: AuthIdentity; originalUrl?: string };

/** The identity `AuthGuard` stored on a request, if it ran. */
export function requestIdentity(req: AuthenticatedRequest): AuthIdentity | undefined {
  return req.user;
}

/**
 * Protects HTTP routes with the same decision as the WebSocket admission path
 * (`AuthService.authenticate`). Stores the identity as `req.user`; a refusal
 * becomes an `HttpException` with its status and reason (401 also gets
 * `WWW-Authenticate: Bearer`, 503 `Retry-After`).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(private readonly auth: AuthService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<AuthenticatedRequest>();
    const target = parseRequestTarget(req.originalUrl ?? req.url);
    if (target === null) throw new HttpException('malformed request target', 400);
    const { query } = target;
    try {
      req.user = await this.auth.authenticate(req, query);
      return true;
    } catch (err) {
      if (!isRefusal(err)) throw err;
      const res = http.getResponse<ServerResponse>();
      if (err.status === 401 && !res.headersSent) res.setHeader('WWW-Authenticate', 'Bearer');
      if (err.status === 503 && !res.headersSent) res.setHeader('Retry-After', RETRY_AFTER_S);
      throw new HttpException(err.reason, err.status);
    }
  }
}
