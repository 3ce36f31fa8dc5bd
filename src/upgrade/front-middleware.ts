import { Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

export type FrontMiddleware = (req: Request, res: Response, next: NextFunction) => void;

/**
 * Express middleware that must see requests before any controller, body parser
 * or 404 handler — the tunnel subdomain router. Providers register in their
 * constructors; `startWsproxy` mounts them before `app.init()`.
 */
@Injectable()
export class FrontMiddlewareRegistry {
  private readonly items: FrontMiddleware[] = [];

  add(mw: FrontMiddleware): void {
    this.items.push(mw);
  }

  all(): FrontMiddleware[] {
    return [...this.items];
  }
}
