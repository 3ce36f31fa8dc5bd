import { connect, type Socket } from 'node:net';
import { Injectable } from '@nestjs/common';
import { exhaustionRefusal } from '../common/local-exhaustion.js';
import { Refusal } from '../common/refusal.js';
import { clientWentAway, type GoneSignal } from '../upgrade/client-gone.js';
import type { DirectReader } from './direct-reader.js';

/**
 * Opens TCP connections to already-checked addresses. A seam so admission logic
 * can be tested without sockets; the real one dials.
 */
@Injectable()
export class TcpDialer {
  /**
   * Connects to `address:port` (an IP literal), or throws `Refusal` 502
   * (refused/unreachable), 504 (timeout) or 503 (the proxy is out of file
   * descriptors or local ports). With a `reader`, the socket reads
   * through it and is returned paused: nothing is read before the consumer
   * calls `reader.start` and `socket.resume()`. With `halfOpen`, the
   * target's FIN does not end the socket's own side (`allowHalfOpen`): the
   * caller ends it once what the client still sends has been written.
   */
  dial(address: string, port: number, timeoutMs: number, signal: GoneSignal, reader?: DirectReader, halfOpen = false): Promise<Socket> {
    if (signal.aborted) return Promise.reject(clientWentAway());
    return new Promise<Socket>((resolve, reject) => {
      // readableHighWaterMark 0: paused for backpressure, the socket stops reading at the next read instead of
      // buffering reads until 16 KiB of them wait (16 384 chunks, ~2.5 MiB of heap, for 1-byte segments).
      // Flowing, a read is emitted as it comes whatever the mark. A direct reader's socket stops reading on pause.
      const socket = connect({ host: address, port, noDelay: true, allowHalfOpen: halfOpen, ...(reader ? { onread: reader.onread } : { readableHighWaterMark: 0 }) });
      // Paused before 'connect' returns, the socket never starts its first read.
      if (reader) socket.once('connect', () => socket.pause());
      const finish = (err: Refusal | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        socket.off('connect', onConnect);
        if (err) {
          socket.destroy();
          reject(err);
        } else {
          resolve(socket);
        }
      };
      const onConnect = (): void => finish(null);
      const onError = (err: NodeJS.ErrnoException): void =>
        finish(
          exhaustionRefusal(err.code, 'connecting to a target') ??
            new Refusal(502, err.code === 'ECONNREFUSED' ? 'target refused the connection' : 'target unreachable', 'dial'),
        );
      const onAbort = (): void => finish(clientWentAway());
      const timer = setTimeout(() => finish(new Refusal(504, 'target connect timeout', 'dial')), timeoutMs);
      socket.once('connect', onConnect);
      socket.once('error', onError);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
