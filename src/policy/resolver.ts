import { promises as dns } from 'node:dns';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

/** Name resolution took longer than `DNS_TIMEOUT_MS`. */
export class ResolveTimeoutError extends Error {
  constructor(readonly hostname: string, readonly timeoutMs: number) {
    super(`resolving ${hostname} timed out after ${timeoutMs} ms`);
    this.name = 'ResolveTimeoutError';
  }
}

/**
 * The DNS seam of the target policy: every address a name resolves to, in the
 * resolver's order, through the system resolver (`getaddrinfo`, so `/etc/hosts`
 * and `localhost` behave as for any other program), bounded by `DNS_TIMEOUT_MS`.
 * Tests replace it with `{ provide: TargetResolver, useValue: { lookup } }`.
 */
@Injectable()
export class TargetResolver {
  private readonly timeoutMs: number;

  constructor(@Inject(wsproxyConfig.KEY) config: WsproxyConfigType) {
    this.timeoutMs = config.dnsTimeoutMs;
  }

  /**
   * Resolves a host name to IP address strings. Rejects with the resolver's
   * error (e.g. `ENOTFOUND`) or {@link ResolveTimeoutError}.
   */
  async lookup(name: string): Promise<string[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ResolveTimeoutError(name, this.timeoutMs)), this.timeoutMs);
    });
    try {
      const found = await Promise.race([dns.lookup(name, { all: true, verbatim: true }), timeout]);
      return found.map((a) => a.address);
    } finally {
      clearTimeout(timer);
    }
  }
}
