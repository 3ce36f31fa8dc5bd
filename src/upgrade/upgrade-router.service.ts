import type { IncomingMessage } from 'node:http';
import { Injectable } from '@nestjs/common';
import type { WebSocketServer } from 'ws';
import type { Admitted, HostUpgradeMatcher, RawUpgradeHandler, UpgradeRoute } from './upgrade-route.js';

/** Where an upgrade request carries its admission: a property, cheaper per upgrade than a `WeakMap` entry. */
const ADMISSION = Symbol('wsproxy.admission');

type AdmittedRequest = IncomingMessage & { [ADMISSION]?: Admitted };

/** The admission result of an accepted upgrade, for the gateway's `handleConnection(ws, req)`. */
export function admissionOf<A extends Admitted>(req: IncomingMessage): A {
  const a = (req as AdmittedRequest)[ADMISSION];
  if (!a) throw new Error('no admission for this request');
  return a as A;
}

export function setAdmission(req: IncomingMessage, admitted: Admitted): void {
  (req as AdmittedRequest)[ADMISSION] = admitted;
}

/**
 * Registry joining the two halves of an endpoint: the gateway's admission
 * (`register`) and the `ws` server the adapter created for the gateway's path
 * (`attachServer`).
 */
@Injectable()
export class UpgradeRouter {
  private readonly routes = new Map<string, UpgradeRoute>();
  private readonly servers = new Map<string, WebSocketServer>();
  private readonly hostMatchers: HostUpgradeMatcher[] = [];

  register(path: string, route: UpgradeRoute): void {
    this.routes.set(path, route);
  }

  registerHostMatcher(matcher: HostUpgradeMatcher): void {
    this.hostMatchers.push(matcher);
  }

  attachServer(path: string, server: WebSocketServer): void {
    this.servers.set(path, server);
  }

  /** A host matcher's raw handler for this request, if a matcher claims its Host. */
  matchHost(req: IncomingMessage): RawUpgradeHandler | null {
    for (const m of this.hostMatchers) {
      const handler = m.match(req);
      if (handler) return handler;
    }
    return null;
  }

  /** The endpoint serving a path, when both its admission and its ws server exist. */
  resolvePath(pathname: string): { route: UpgradeRoute; server: WebSocketServer } | null {
    const route = this.routes.get(pathname);
    const server = this.servers.get(pathname);
    return route && server ? { route, server } : null;
  }
}
