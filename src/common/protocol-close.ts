import type { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { fitCloseReason } from './close-reason.js';
import { protocolCloseCode } from './ws-error-codes.js';

export { protocolCloseCode };

/**
 * Makes `ws` say why it closes a connection for the peer's frames: its own
 * close frame (1002, 1007, 1008, 1009) carries no reason. A listener put before
 * `ws`'s own on the frame receiver closes first, with the same code and the
 * error's message ("Invalid WebSocket frame: MASK must be set"); `ws`'s own
 * close then finds the connection closing and sends nothing more, and ends the
 * socket as it would have. Call it on an accepted WebSocket (`ws` is pinned to
 * one version; the relay's end-to-end tests check the reason arrives).
 */
export function explainProtocolCloses(ws: WebSocket): void {
  const receiver = (ws as unknown as { _receiver?: EventEmitter })._receiver;
  receiver?.prependListener('error', (err: Error) => {
    const code = protocolCloseCode(err);
    if (code !== null && ws.readyState === WebSocket.OPEN) ws.close(code, fitCloseReason(err.message));
  });
}

/** Time a peer whose frames broke the protocol has to take the close frame before its socket is dropped. */
export const PROTOCOL_CLOSE_GRACE_MS = 2_000;

/**
 * Ends `ws` after an error: at once, unless the error is one of the peer's
 * frames. Then `ws` has already sent its close frame (1002, 1007, 1008, 1009),
 * ended its side and reads on only to discard; dropping the socket now, with
 * the peer's bytes unread (a client still sending an oversized message),
 * resets the connection and the peer never sees the code: it gets
 * `PROTOCOL_CLOSE_GRACE_MS` first.
 */
export function dropAfterError(ws: WebSocket, err: Error): void {
  if (protocolCloseCode(err) === null) return void ws.terminate();
  const timer = setTimeout(() => ws.terminate(), PROTOCOL_CLOSE_GRACE_MS);
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}

/**
 * Handles every error of `ws` with `dropAfterError` and, for an error of the
 * peer's frames, first calls `violated` with the close code `ws` sent and the
 * error's message (the close frame's reason, see `explainProtocolCloses`). Returns a
 * function that stops listening.
 */
export function onWebSocketError(ws: WebSocket, violated: (code: number, reason: string) => void): () => void {
  const onError = (err: Error): void => {
    const code = protocolCloseCode(err);
    if (code !== null) violated(code, err.message);
    dropAfterError(ws, err);
  };
  ws.on('error', onError);
  return () => ws.off('error', onError);
}

/**
 * Listens for the end of `ws`, dropping it on any error, and reports the end
 * once: after an error of the peer's frames, the code `ws` sent and the
 * error's message, not the 1006 of the `close` event that follows, with
 * `forPeerFrames` true (this side closed it, for what the peer sent).
 */
export function onWebSocketEnd(ws: WebSocket, end: (code: number, reason: string, forPeerFrames: boolean) => void): void {
  let sent: { code: number; reason: string } | null = null;
  onWebSocketError(ws, (code, reason) => (sent ??= { code, reason }));
  ws.once('close', (code: number, reason: Buffer) => {
    if (sent === null) end(code, reason.toString(), false);
    else if (code === 1006) end(sent.code, sent.reason, true);
    else end(code, reason.toString() || sent.reason, true);
  });
}
