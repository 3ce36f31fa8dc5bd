import { Module } from '@nestjs/common';
import { AuthController } from './auth.controller.js';
import { AuthGuard } from './auth.guard.js';
import { AuthService } from './auth.service.js';
import { systemClock } from '../common/clock.js';
import { AUTH_CLOCK } from './clock.js';
import { JwksReadiness } from './jwks.readiness.js';
import { JwksService } from './jwks.service.js';

/**
 * JWT authentication against the issuer's JWKS. Exports `AuthService` (the one
 * decision, for the WebSocket admission path), `AuthGuard` (HTTP routes) and
 * `JwksService`. Adds the `jwks` readiness check. Needs the global configuration
 * and health modules.
 */
@Module({
  controllers: [AuthController],
  providers: [{ provide: AUTH_CLOCK, useValue: systemClock }, JwksService, JwksReadiness, AuthService, AuthGuard],
  exports: [AuthService, AuthGuard, JwksService],
})
export class AuthModule {}
