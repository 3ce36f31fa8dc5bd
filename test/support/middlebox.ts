import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP middlebox between a client and the service
 * (client → middlebox → service) that a test can cut: `cut()` destroys every
 * connection through it at once, as a network drop would, while it keeps
 * accepting new ones. It counts the bytes it forwarded each way.
 */
export interface Middlebox {
  readonly port: number;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  /** Connections forwarded so far. */
  readonly accepted: number;
  /** Bytes forwarded client → service / service → client, over all connections. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Connection pairs open now. */
  readonly open: number;
  /** Destroys every open connection pair (both sockets); returns how many were cut. */
  cut(): number;
  /**
   * Makes every open connection pair go dark: from now on what either side
   * sends is read and dropped, and nothing is closed (no FIN, no RST), like a
   * path that died silently. New connections are forwarded as usual. Returns
   * how many went dark.
   */
  silence(): number;
  close(): Promise<void>;
}

export async function startMiddlebox(targetPort: number, targetHost = '127.0.0.1'): Promise<Middlebox> {
  const pairs = new Set<[Socket, Socket]>();
  const silenced = new Set<[Socket, Socket]>();
  let accepted = 0;
  let bytesUp = 0;
  let bytesDown = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = connect({ host: targetHost, port: targetPort, noDelay: true });
    client.setNoDelay(true);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('data', (c: Buffer) => (bytesUp += c.length));
    upstream.on('data', (c: Buffer) => (bytesDown += c.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get open() {
      return pairs.size;
    },
    silence(): number {
      const n = pairs.size;
      for (const pair of [...pairs]) {
        const [a, b] = pair;
        a.unpipe(b);
        b.unpipe(a);
        // Read on and drop: a reader that stopped would push back, which a dead path does not.
        a.on('data', () => undefined).resume();
        b.on('data', () => undefined).resume();
        pairs.delete(pair);
        silenced.add(pair);
      }
      return n;
    },
    cut(): number {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        // A reset, not a FIN: no close frame, no orderly end, like a dead link.
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of [...pairs, ...silenced]) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
