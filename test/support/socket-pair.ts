import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type ServerOpts, type Socket } from 'node:net';

/**
 * Both ends of one loopback TCP connection: `client` dialled, `peer` accepted.
 * `server` options apply to the accepting side (`allowHalfOpen` for a peer
 * that never answers a FIN), `client` options to the dialling one.
 */
export async function socketPair(
  options: { server?: ServerOpts; client?: { allowHalfOpen?: boolean } } = {},
): Promise<{ client: Socket; peer: Socket; close(): void }> {
  const server = createServer(options.server ?? {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', ...options.client });
  const [peer] = await accepted;
  await once(client, 'connect');
  server.close();
  return {
    client,
    peer,
    close: () => {
      client.destroy();
      peer.destroy();
    },
  };
}
