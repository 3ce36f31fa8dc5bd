import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HeaderList } from '../core/stream-types.js';
import type { TunnelSession } from '../core/tunnel-session.js';
import type { PlainRefusals } from './response-sink.js';

/** A subdomain request that has no live tunnel on this replica, already past the per-IP and body-size checks. */
export interface RemoteTunnelRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly subdomain: string;
  /** The requester's IP as this replica resolved it. */
  readonly clientIp: string;
  /** Origin-form path and query. */
  readonly path: string;
  /** Called when the request is actually sent to another replica (metrics: `forwarded`). */
  readonly onForwarded: () => void;
  /**
   * Serves the request through `session` (a channel to the replica that holds
   * the tunnel) exactly as through a local tunnel: the same body limit, header
   * hygiene and response handling. `headersFirst` go before the request's
   * headers; a response head made only of `plain.header` is answered as a
   * plain refusal with that reason.
   */
  readonly serveThrough: (session: TunnelSession, headersFirst: HeaderList, plain: PlainRefusals) => void;
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

/** A WebSocket upgrade to a subdomain that has no live tunnel on this replica, already past the per-IP check. */
export interface RemoteTunnelUpgrade {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  /** Bytes the requester sent after its request head. */
  readonly head: Buffer;
  readonly subdomain: string;
  /** The requester's IP as this replica resolved it. */
  readonly clientIp: string;
  /**
   * Gives back this replica's per-IP slot; called once, when the handshake is
   * settled (the owner answered, it failed, or the requester went away). The
   * owner counts an accepted WebSocket itself.
   */
  readonly release: () => void;
}

/**
 * Serves WebSocket upgrades to tunnel subdomains whose tunnel lives on
 * another replica (cluster mode): forwards the upgrade to the owner and pipes
 * the two connections, or answers 404 when no replica holds the tunnel.
 * Without it, such an upgrade is a plain 404.
 */
export interface RemoteTunnelWebSocket {
  forward(upgrade: RemoteTunnelUpgrade): void;
}

/** Injection token of the optional `RemoteTunnelWebSocket`. */
export const REMOTE_TUNNEL_WEBSOCKET = Symbol('REMOTE_TUNNEL_WEBSOCKET');
