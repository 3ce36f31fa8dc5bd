import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { ChurnSet } from '../common/churn-map.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

/**
 * Intervals a WebSocket the proxy has stopped reading may stay silent (no
 * pong) before it is terminated: its pongs wait unread behind the data it
 * sent, so two missed pongs prove nothing then, but a peer that is gone, or a
 * stall that never ends, must still end.
 */
export const PAUSED_SILENT_INTERVALS = 10;

interface Watched {
  readonly ws: WebSocket;
  /** Pings unanswered while the socket was being read. */
  missed: number;
  /** Intervals without a pong while the proxy was not reading the socket. */
  stalled: number;
}

/**
 * WebSocket keepalive on one timer for all connections: every interval each
 * socket is pinged; one that has missed two pongs in a row is terminated.
 * While the proxy itself has paused reading a socket (backpressure from its
 * target or tunnel stream), its pongs wait unread behind the data the peer
 * sent: those intervals count towards PAUSED_SILENT_INTERVALS instead.
 */
@Injectable()
export class KeepaliveService implements OnModuleInit, OnApplicationShutdown {
  private readonly watched = new ChurnSet<Watched>();
  private timer: NodeJS.Timeout | null = null;

  constructor(@Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType) {}

  onModuleInit(): void {
    this.timer = setInterval(() => this.tick(), this.config.pingIntervalMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Watches `ws` until it closes. */
  watch(ws: WebSocket): void {
    const entry: Watched = { ws, missed: 0, stalled: 0 };
    const handle = this.watched.add(entry);
    ws.on('pong', () => {
      entry.missed = 0;
      entry.stalled = 0;
    });
    ws.once('close', () => this.watched.delete(handle));
  }

  private tick(): void {
    for (const entry of this.watched.values()) {
      const { ws } = entry;
      if (entry.missed >= 2 || entry.stalled >= PAUSED_SILENT_INTERVALS) {
        // Its 'close' (which follows at once) removes it; removing it here too could, once handles wrap, remove another.
        ws.terminate();
        continue;
      }
      if (ws.isPaused) entry.stalled++;
      else entry.missed++;
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }
}
