import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

/**
 * WebSocket keepalive on one timer for all connections: every interval each
 * socket is pinged; one that has missed two pongs in a row is terminated.
 */
@Injectable()
export class KeepaliveService implements OnModuleInit, OnApplicationShutdown {
  private readonly missed = new Map<WebSocket, number>();
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
    this.missed.set(ws, 0);
    ws.on('pong', () => this.missed.set(ws, 0));
    ws.once('close', () => this.missed.delete(ws));
  }

  private tick(): void {
    for (const [ws, missed] of this.missed) {
      if (missed >= 2) {
        this.missed.delete(ws);
        ws.terminate();
        continue;
      }
      this.missed.set(ws, missed + 1);
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }
}
