import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const QUEUED = Symbol('wsproxy.queuedResponses');
type Connection = Socket & { [QUEUED]?: Set<ServerResponse> };

/**
 * Makes sure `res` emits `'close'` when its connection closes, even while it
 * is queued behind an earlier response on the same keep-alive connection
 * (HTTP/1.1 pipelining).
 *
 * Node 20 emits `'close'` only on the response that holds the socket; a
 * pipelined one still waiting its turn is never told the connection is gone
 * (nodejs/node#62534 fixed it in later versions), so whatever its `'close'`
 * listeners give back (the per-IP slot, the tunnel stream) would be held
 * forever. One `'close'` listener per connection serves all its queued
 * responses; a response leaves the set when it gets the socket or closes.
 */
export function closeWithConnection(req: IncomingMessage, res: ServerResponse): void {
  if (res.socket) return;
  const connection = req.socket as Connection;
  if (connection.destroyed) {
    closeOrphan(res);
    return;
  }
  const set = queuedOn(connection);
  set.add(res);
  const leave = (): void => void set.delete(res);
  res.once('socket', leave);
  res.once('close', leave);
}

/** The connection's queued responses, with the one `'close'` listener that closes them all. */
function queuedOn(connection: Connection): Set<ServerResponse> {
  const existing = connection[QUEUED];
  if (existing) return existing;
  const set = (connection[QUEUED] = new Set<ServerResponse>());
  connection.once('close', () => {
    for (const r of set) closeOrphan(r);
    set.clear();
  });
  return set;
}

/** Destroys a response that will never get a socket and emits its `'close'` unless Node does (newer versions do, a tick later). */
function closeOrphan(res: ServerResponse): void {
  let closed = false;
  res.once('close', () => void (closed = true));
  res.destroy();
  process.nextTick(() => {
    if (!closed) res.emit('close');
  });
}
