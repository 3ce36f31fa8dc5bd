import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { GoneSignal } from './client-gone.js';
import type { QueryParams } from './query-params.js';

/** What the router knows of an upgrade request before admission. */
export interface UpgradeContext {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  /** The request target's path (routing) and query (parameters). */
  readonly path: string;
  readonly query: QueryParams;
  readonly clientIp: string;
  /**
   * Aborted once the client's socket is destroyed (after an error). The
   * socket is not read before the handshake completes, so a client that leaves
   * quietly is noticed only when it is written to.
   */
  readonly signal: GoneSignal;
}

/** What a successful admission hands over to the connection. */
export interface Admitted {
  /** Undoes the admission (releases slots, closes a dialled target) when the handshake never completes. */
  abort(): void;
  /** Largest message accepted on this connection, when it differs from the route's `maxPayload` (e.g. by protocol version). */
  readonly maxPayload?: number;
}

/**
 * A WebSocket endpoint behind the upgrade router. `admit` runs the whole
 * admission path and throws a `Refusal`; only when it resolves is the handshake
 * completed and the gateway's `handleConnection(ws, req)` called.
 */
export interface UpgradeRoute<A extends Admitted = Admitted> {
  /** Largest message accepted from the client on this endpoint; default `MAX_MESSAGE_BYTES`. */
  readonly maxPayload?: number;
  admit(ctx: UpgradeContext): Promise<A>;
}

/** Handles a whole upgrade itself (answers or destroys the socket); used for tunnel subdomains. */
export type RawUpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Claims upgrades by Host before any path is looked at (tunnel subdomains), so
 * a request to a tunnel host can never reach `/relay` or `/tunnel`.
 */
export interface HostUpgradeMatcher {
  match(req: IncomingMessage): RawUpgradeHandler | null;
}
