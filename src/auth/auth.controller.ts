import { Controller, Get, Req, UseGuards } from '@nestjs/common';
import { AuthGuard, type AuthenticatedRequest } from './auth.guard.js';

/** `GET /auth/whoami`: the user id the presented token maps to. */
@Controller('auth')
export class AuthController {
  @Get('whoami')
  @UseGuards(AuthGuard)
  whoami(@Req() req: AuthenticatedRequest): { userId: string } {
    return { userId: req.user!.userId };
  }
}
