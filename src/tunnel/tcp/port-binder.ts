import { createServer, type Server, type Socket } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { ipLimitKey } from '../../limits/ip-limit-key.js';
import { InFlightCounter } from '../http/in-flight-counter.js';

/**
 * Binds raw tunnel ports and admits the connections that arrive on them: at
 * most `MAX_TUNNEL_TCP_CONNS_PER_IP` from one source IP over every port this
 * replica listens on (its own tunnels' and, in cluster mode, the ports it
 * forwards), so one visitor cannot take the global cap with idle connections.
 * A seam so the registration logic does not depend on real sockets; the real one listens.
 */
@Injectable()
export class TcpPortBinder {
  private readonly perIp: InFlightCounter;

  constructor(@Inject(wsproxyConfig.KEY) config: WsproxyConfigType) {
    this.perIp = new InFlightCounter(config.maxTunnelTcpConnsPerIp, (ip) => ipLimitKey(ip, config.ipv6LimitPrefix));
  }

  /**
   * Listens on `host:port` and hands every admitted connection to `onConnection`.
   * Resolves `null` when the port cannot be bound (taken, not permitted, no
   * such local address), after telling `onRefused` why.
   */
  listen(port: number, host: string, onConnection: (socket: Socket) => void, onRefused?: (code: string) => void): Promise<Server | null> {
    return new Promise((resolve) => {
      // Half-open kept: the stream layer decides when each direction ends.
      const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.admit(socket, onConnection));
      const onError = (err: NodeJS.ErrnoException): void => {
        server.close();
        onRefused?.(err.code ?? err.message);
        resolve(null);
      };
      server.once('error', onError);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', onError);
        server.on('error', () => undefined);
        resolve(server);
      });
    });
  }

  /** Connections from `ip` open now on this replica's tunnel ports (tests, diagnostics). */
  connectionsFrom(ip: string): number {
    return this.perIp.get(ip);
  }

  private admit(socket: Socket, onConnection: (socket: Socket) => void): void {
    const ip = socket.remoteAddress ?? '';
    if (!this.perIp.tryAcquire(ip)) {
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    socket.once('close', () => this.perIp.release(ip));
    onConnection(socket);
  }
}
