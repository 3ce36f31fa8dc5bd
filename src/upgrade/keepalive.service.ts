import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Socket } from 'node:net';
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

/** Why keepalive gave up on a WebSocket, as the end of a relay reports it. */
export const NO_PONG_REASON = 'keepalive timeout: no pong';
export const PAUSED_SILENT_REASON = 'keepalive timeout: silent while paused';

interface Watched {
  readonly ws: WebSocket;
  /** Called (with the reason) just before keepalive terminates the socket. */
  readonly onTimeout: ((reason: string) => void) | undefined;
  /** Pings unanswered while the socket was being read. */
  missed: number;
  /** Intervals without a pong while the proxy was not reading the socket. */
  stalled: number;
  /** The connection under the WebSocket, whose bytes read since the last interval also prove the peer is there. */
  readonly socket: Socket | undefined;
  /** `socket.bytesRead` at the last interval. */
  read: number;
}

/**
 * WebSocket keepalive on one timer for all connections: every interval each
 * socket is pinged; one that has missed two pongs in a row is terminated.
 * Bytes read from a peer in an interval answer for it as a pong does: a
 * browser uploading over a slow link sends its pong behind everything it
 * queued before it, and the proxy, reading all the while, would otherwise cut
 * off the upload (1006) because the pong comes late.
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

  /**
   * Watches `ws` until it closes. `onTimeout` hears why, just before a peer
   * that stopped answering is terminated: without it, its end would read as
   * the client's own (a 1006 with no reason).
   */
  watch(ws: WebSocket, onTimeout?: (reason: string) => void): void {
    // ws keeps the connection as a private field; read once here rather than per interval.
    const socket = (ws as unknown as { _socket?: Socket | null })._socket ?? undefined;
    const entry: Watched = { ws, onTimeout, missed: 0, stalled: 0, socket, read: socket?.bytesRead ?? 0 };
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
      const read = entry.socket?.bytesRead ?? entry.read;
      if (read !== entry.read) {
        entry.read = read;
        entry.missed = 0;
        entry.stalled = 0;
      }
      if (entry.missed >= 2 || entry.stalled >= PAUSED_SILENT_INTERVALS) {
        // Its 'close' (which follows at once) removes it; removing it here too could, once handles wrap, remove another.
        entry.onTimeout?.(entry.missed >= 2 ? NO_PONG_REASON : PAUSED_SILENT_REASON);
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
