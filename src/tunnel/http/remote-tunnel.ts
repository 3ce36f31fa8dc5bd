import type { Request, Response } from 'express';

/** A subdomain request that has no live tunnel on this replica, already past the per-IP and body-size checks. */
export interface RemoteTunnelRequest {
  readonly req: Request;
  readonly res: Response;
  readonly subdomain: string;
  /** The requester's IP as this replica resolved it. */
  readonly clientIp: string;
  /** Origin-form path and query. */
  readonly path: string;
  /** Called when the request is actually sent to another replica (metrics: `forwarded`). */
  readonly onForwarded: () => void;
}

/**
 * Serves tunnel subdomains whose tunnel lives on another replica (cluster
 * mode): forwards the request to the owner, or answers 404 when no replica
 * holds the tunnel. Without it, such a request is a plain 404.
 */
export interface RemoteTunnelHttp {
  forward(request: RemoteTunnelRequest): void;
}

/** Injection token of the optional `RemoteTunnelHttp`. */
export const REMOTE_TUNNEL_HTTP = Symbol('REMOTE_TUNNEL_HTTP');
