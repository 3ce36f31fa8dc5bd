import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** Both ends of one loopback TCP connection. */
export async function socketPair(): Promise<{ client: Socket; peer: Socket; close(): void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
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
