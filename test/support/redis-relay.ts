import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A loopback relay between replicas and Redis (replica → relay → Redis) that
 * calls back when a replica sends a chosen text, and can hold Redis's replies
 * and its closing of a connection (`hold`) then hand them all over at once (`release`).
 */
export interface RedisRelay {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Calls `then` once, as soon as a replica has sent `text` (a command argument, a key). */
  onSent(text: string, then: () => void): void;
  /** From now on Redis's replies (and connection closes) are kept, not passed on. */
  hold(): void;
  /** Writes the replies kept so far and passes the next ones on again. */
  release(): void;
  close(): Promise<void>;
}

export async function startRedisRelay(redisPort: number): Promise<RedisRelay> {
  const pairs = new Set<[Socket, Socket]>();
  const held: [Socket, Buffer | null][] = [];
  const watches: { text: string; then: () => void }[] = [];
  let holding = false;
  const server: Server = createServer((replica) => {
    const redis = connect({ host: '127.0.0.1', port: redisPort, noDelay: true });
    const pair: [Socket, Socket] = [replica, redis];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      replica.destroy();
      redis.destroy();
    };
    replica.on('error', drop).on('close', drop);
    // Redis closing the connection (after QUIT) is held like a reply: a Redis that stopped answering closes nothing.
    redis.on('error', drop).on('close', () => (holding ? held.push([replica, null]) : drop()));
    replica.on('data', (c: Buffer) => {
      redis.write(c);
      const text = c.toString('latin1');
      for (const w of [...watches]) {
        if (!text.includes(w.text)) continue;
        watches.splice(watches.indexOf(w), 1);
        w.then();
      }
    });
    redis.on('data', (c: Buffer) => (holding ? held.push([replica, c]) : replica.write(c)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    onSent: (text, then) => void watches.push({ text, then }),
    hold: () => void (holding = true),
    release: () => {
      holding = false;
      for (const [replica, c] of held.splice(0)) {
        if (c) replica.write(c);
        else replica.destroy();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
