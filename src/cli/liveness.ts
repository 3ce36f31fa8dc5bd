import { WebSocket } from 'ws';

/** How often the client pings, and how long it waits to hear anything before it gives the connection up. */
export interface LivenessOptions {
  readonly pingEveryMs: number;
  readonly deadAfterMs: number;
}

/**
 * Pings every 10 s; nothing heard for 65 s is a dead path. While the client's own pings wait behind an upload
 * the proxy reads slowly, the proxy's pings (every `PING_INTERVAL_MS`, 30 s by default) are all it hears, so
 * the deadline spans two of them and some: at 30 s a slow upload was cut off as a dark path.
 */
export const CLIENT_LIVENESS: LivenessOptions = { pingEveryMs: 10_000, deadAfterMs: 65_000 };

/** What `watchLiveness` found. */
export interface Liveness {
  /** Whether it terminated the socket because nothing was heard for `deadAfterMs`. */
  readonly lost: boolean;
}

/**
 * Terminates `ws` once nothing (data, ping or pong) has arrived for
 * `deadAfterMs`, pinging every `pingEveryMs` meanwhile. A path that goes dark
 * without a reset (a laptop that moved from Wi-Fi to LTE) closes nothing by
 * itself; terminating turns it into a 1006 that a resumable relay reattaches
 * after, and that ends a plain one instead of leaving it hanging.
 */
export function watchLiveness(ws: WebSocket, options: LivenessOptions = CLIENT_LIVENESS): Liveness {
  const state = { lost: false };
  let heard = Date.now();
  const hear = (): void => void (heard = Date.now());
  ws.on('open', hear);
  ws.on('message', hear);
  ws.on('ping', hear);
  ws.on('pong', hear);
  const timer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    // Paused on purpose (a slow reader): pongs wait unread behind the data, which says nothing of the path.
    if (ws.isPaused) {
      heard = Date.now();
      return;
    }
    if (Date.now() - heard > options.deadAfterMs) {
      state.lost = true;
      ws.terminate();
      return;
    }
    ws.ping();
  }, options.pingEveryMs);
  timer.unref();
  ws.once('close', () => clearInterval(timer));
  return state;
}

/** `30 s`, or `1500 ms` when not whole seconds: for messages. */
export function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
