import { promises as dns } from 'node:dns';
import { Injectable } from '@nestjs/common';
import { withDeadline } from '../common/deadline.js';

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
 * and `localhost` behave as for any other program). It settles when
 * `getaddrinfo` does, which is what the policy counts lookups in flight by;
 * the policy bounds the wait with `DNS_TIMEOUT_MS`.
 * Tests replace it with `{ provide: TargetResolver, useValue: { lookup } }`.
 */
@Injectable()
export class TargetResolver {
  /** Resolves a host name to IP address strings. Rejects with the resolver's error (e.g. `ENOTFOUND`). */
  async lookup(name: string): Promise<string[]> {
    const found = await dns.lookup(name, { all: true, verbatim: true });
    return found.map((a) => a.address);
  }
}

/** `lookup`, or a {@link ResolveTimeoutError} once `timeoutMs` have passed without it settling. */
export function withinResolveTimeout(lookup: Promise<string[]>, name: string, timeoutMs: number): Promise<string[]> {
  return withDeadline(lookup, timeoutMs, () => new ResolveTimeoutError(name, timeoutMs));
}
