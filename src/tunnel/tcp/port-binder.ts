import { createServer, type Server, type Socket } from 'node:net';
import { Injectable } from '@nestjs/common';

/**
 * Binds raw tunnel ports. A seam so the registration logic does not depend on
 * real sockets; the real one listens.
 */
@Injectable()
export class TcpPortBinder {
  /**
   * Listens on `host:port` and hands every connection to `onConnection`.
   * Resolves `null` when the port cannot be bound (taken, not permitted).
   */
  listen(port: number, host: string, onConnection: (socket: Socket) => void): Promise<Server | null> {
    return new Promise((resolve) => {
      // Half-open kept: the stream layer decides when each direction ends.
      const server = createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
      const onError = (): void => {
        server.close();
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
}
