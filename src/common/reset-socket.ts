import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Ends `socket` with a TCP reset (RST) instead of a FIN, and destroys it: for a stream the proxy knows it
 * truncated (bytes meant for its peer were dropped, or its other side vanished without a clean end). A FIN
 * says "this is the whole stream": a close-delimited HTTP/1.0 response, an `nc` transfer or an rsync over a
 * raw TCP tunnel that lost its tail behind a FIN looks complete to its peer. A reset does not: the peer reads
 * ECONNRESET. What still waits in the kernel's send buffer is discarded with it, so this is only for
 * streams already known to be truncated; a complete one ends with `end()`.
 *
 * A socket whose FIN is out or going out after every byte (`end()` called and its writes all handed to the
 * kernel) is only destroyed: callers that drop a connection whatever state it is in (the drain, a deadline)
 * must not turn a whole stream into a truncated one, and the kernel still delivers its tail. A reset would
 * also fail there while the shutdown is pending: libuv refuses it (EINVAL) and Node (20 to 24) marks the
 * handle closing without closing it, so the socket never emits 'close' and the process spins at exit.
 *
 * `socket.resetAndDestroy()` (SO_LINGER 0) needs a live TCP handle: it throws for any other handle (a TLS
 * socket, a pipe) and, on a socket without one, destroys it with ERR_SOCKET_CLOSED as its error. Those, and a
 * socket already destroyed, are destroyed the plain way.
 */
export function resetSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  const s = socket as Socket & { _handle?: unknown; _writableState?: { finalCalled?: boolean } };
  // `finalCalled`: the writes are all out of Node and the shutdown issued (or done). Unknown counts as issued.
  if (s.writableEnded && s._writableState?.finalCalled !== false) return void socket.destroy();
  if (typeof s.resetAndDestroy === 'function' && s._handle) {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      // Not a TCP handle.
    }
  }
  socket.destroy();
}
