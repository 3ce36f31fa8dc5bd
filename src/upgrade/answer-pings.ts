import { WebSocket } from 'ws';

/**
 * Answers a WebSocket's pings with at most one pong queued at a time; the
 * server must be created with `autoPong: false` (`acceptingServer` does
 * both). `ws`'s own answer queues a pong for every ping whatever the
 * socket's send buffer holds, so a client that sends pings and never reads
 * would grow the proxy's memory without bound. While a pong waits to be
 * flushed, later pings are coalesced: only the most recent is answered, once
 * the previous pong is out (RFC 6455 §5.5.3 allows it).
 */
export function answerPings(ws: WebSocket): void {
  let inFlight = false;
  let pending: Buffer | null = null;
  const send = (data: Buffer): void => {
    if (ws.readyState !== WebSocket.OPEN) return;
    inFlight = true;
    ws.pong(data, false, flushed);
  };
  const flushed = (): void => {
    inFlight = false;
    const next = pending;
    pending = null;
    if (next) send(next);
  };
  ws.on('ping', (data: Buffer) => {
    if (inFlight) pending = Buffer.from(data);
    else send(data);
  });
}
