import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { ChurnSet } from '../common/churn-map.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

interface Watched {
  readonly ws: WebSocket;
  missed: number;
}

/**
 * WebSocket keepalive on one timer for all connections: every interval each
 * socket is pinged; one that has missed two pongs in a row is terminated.
 * Pongs are not counted while the proxy itself has paused reading a socket
 * (backpressure from its target or tunnel stream): they wait unread behind
 * the data the peer sent, so silence proves nothing then. The pings still go
 * out, and a peer that is really gone fails them at the TCP level.
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
    const entry: Watched = { ws, missed: 0 };
    const handle = this.watched.add(entry);
    ws.on('pong', () => (entry.missed = 0));
    ws.once('close', () => this.watched.delete(handle));
  }

  private tick(): void {
    for (const entry of this.watched.values()) {
      const { ws } = entry;
      if (entry.missed >= 2) {
        // Its 'close' (which follows at once) removes it; removing it here too could, once handles wrap, remove another.
        ws.terminate();
        continue;
      }
      if (ws.isPaused) entry.missed = 0;
      else entry.missed++;
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }
}
