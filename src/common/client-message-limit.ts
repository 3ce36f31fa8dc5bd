import type { WebSocket } from 'ws';
import { dropAfterError, explainProtocolCloses, protocolCloseCode } from './protocol-close.js';

/**
 * The largest message the reference relay clients (`wsproxy-connect`, plain
 * and `--resume`, and `ResumableRelay`) take from the proxy by default: the
 * proxy's default `MAX_MESSAGE_BYTES`, the same bound the proxy puts on what
 * clients send. The proxy itself sends target bytes in reads of at most 256 KiB
 * (one byte more with a resume marker) and control frames of at most 4 KiB, so
 * this is room to spare, not the 100 MiB `ws` would take by default.
 */
export const RELAY_CLIENT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Sets the largest message `ws` accepts from now on, on a connection already
 * open (a client's `maxPayload` is fixed when it is created). `ws` compares
 * each frame against its receiver's limit as the frame arrives (the version
 * is pinned; a test checks an oversized message is refused with 1009 after
 * this). Returns false when the receiver is not there to set.
 */
export function setMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

/** How a client's WebSocket ended when `ws` closed it for the proxy's frames. */
export interface OwnProtocolClose {
  readonly code: number;
  readonly reason: string;
}

/**
 * For a client's WebSocket: when `ws` rejects a message of the peer (over
 * `maxPayload`: 1009; not UTF-8: 1007; …) the close frame says why, the socket
 * is dropped if the peer does not answer within a grace period (instead of
 * `ws`'s 30 s), and the returned function gives the code and reason `ws` sent
 * — the `close` event reports 1006 when the peer never answered. Call it before
 * the connection opens.
 */
export function watchOwnProtocolCloses(ws: WebSocket): () => OwnProtocolClose | null {
  let sent: OwnProtocolClose | null = null;
  ws.once('open', () => explainProtocolCloses(ws));
  ws.on('error', (err: Error) => {
    const code = protocolCloseCode(err);
    if (code === null) return;
    sent ??= { code, reason: err.message };
    dropAfterError(ws, err);
  });
  return () => sent;
}
