import type { IncomingMessage, ServerResponse } from 'node:http';
import { Injectable, Logger } from '@nestjs/common';
import { answerPlain } from './raw-response.js';

/** Takes a request before Express sees it: returns true when it answers it, false to pass it on. */
export type FrontRequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Handlers that see every plain HTTP request before Express: the tunnel
 * subdomain router today. They sit on the hot path of every tunnel request, where Express's
 * router, `parseurl` and its request/response decoration cost more than the
 * tunnel itself, and they need none of it. Providers register in their
 * constructors; the HTTP server's request listener calls `dispatch`.
 */
@Injectable()
export class FrontRequestHandlers {
  private readonly logger = new Logger('FrontRequestHandlers');
  private readonly items: FrontRequestHandler[] = [];

  add(handler: FrontRequestHandler): void {
    this.items.push(handler);
  }

  /** True when a handler took the request. A handler that throws answers 500; the process goes on. */
  dispatch(req: IncomingMessage, res: ServerResponse): boolean {
    for (let i = 0; i < this.items.length; i++) {
      try {
        if (this.items[i]!(req, res)) return true;
      } catch (err) {
        this.logger.error(`front handler failed: ${err instanceof Error ? err.message : String(err)}`);
        answerPlain(res, 500, 'internal error', true);
        return true;
      }
    }
    return false;
  }
}
