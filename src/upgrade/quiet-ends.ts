import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * `end()` that skips a repeated call without arguments where Node's
 * `Writable.prototype.end` would only build an `ERR_STREAM_ALREADY_FINISHED` /
 * `ERR_STREAM_DESTROYED` (a captured stack trace and a formatted message, about
 * 4 µs) and, with no callback to give it to, drop it: a stream already ended or
 * errored, and finished or destroyed. Every other call goes to the prototype's
 * `end`, so install it as an own property, never on a prototype.
 */
export function endUnlessEnded(this: Writable, ...args: unknown[]): Writable {
  if (args.length === 0 && (this.writableEnded || this.errored !== null) && (this.writableFinished || this.destroyed)) return this;
  const end = (Object.getPrototypeOf(this) as Writable).end as (...a: unknown[]) => Writable;
  return end.apply(this, args);
}

interface WsInternals {
  _receiver?: Writable;
  _socket?: Writable;
}

/**
 * `ws` ends a server-side connection's frame receiver and socket again after
 * every clean close (when the socket ends and again when it closes): three
 * errors built and thrown away per connection, a few percent of a relay's
 * setup CPU. Gives the accepted WebSocket's receiver and socket an `end`
 * that skips those calls. `ws` is pinned to one version (see package.json);
 * the spec checks that the fields are where this expects them.
 */
export function quietRedundantEnds(ws: WebSocket): void {
  const internals = ws as unknown as WsInternals;
  if (internals._receiver) internals._receiver.end = endUnlessEnded as Writable['end'];
  if (internals._socket) internals._socket.end = endUnlessEnded as Writable['end'];
}
