import type { Server, Socket } from 'node:net';
import type { PortPool } from './state/port-pool.js';
import type { TunnelRegistry } from './state/tunnel-registry.js';

/**
 * What a registration holds before its WebSocket is open: the claimed
 * subdomain and, when TCP tunnels are on and a port was free, the bound raw
 * port. TCP connections that arrive before the session starts are closed.
 * `release()` gives everything back, once, on every exit path.
 */
export class TunnelReservation {
  private target: { acceptTcp(socket: Socket): void } | null = null;
  private released: Promise<void> | null = null;
  rawPort = 0;
  listener: Server | null = null;

  constructor(
    readonly subdomain: string,
    readonly user: string,
    readonly clientIp: string,
    private readonly registry: TunnelRegistry,
    private readonly pool: PortPool,
  ) {}

  /** Connection handler for the raw port's listener. */
  readonly onTcpConnection = (socket: Socket): void => {
    socket.on('error', () => socket.destroy());
    if (this.target && !this.released) this.target.acceptTcp(socket);
    else socket.destroy();
  };

  /** From now on TCP connections on the port go to `target`. */
  attach(target: { acceptTcp(socket: Socket): void }): void {
    this.target = target;
  }

  get isReleased(): boolean {
    return this.released !== null;
  }

  /** Stops listening, frees the port and the subdomain. Idempotent; resolves when all is given back. */
  release(): Promise<void> {
    if (!this.released) {
      this.target = null;
      this.released = Promise.all([this.registry.release(this.subdomain), this.freePort()]).then(() => undefined);
    }
    return this.released;
  }

  private async freePort(): Promise<void> {
    const { listener, rawPort } = this;
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
    if (rawPort) await this.pool.release(rawPort, this.subdomain);
  }
}
