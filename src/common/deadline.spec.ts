import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { withDeadline } from './deadline.js';

/** A connected loopback socket pair: [client, the server's side]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = await accepted;
  server.close();
  return [client, peer];
}

/** Blocks the event loop for `ms`, as a long GC pause would. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

describe('withDeadline', () => {
  it('settles as the work does before the deadline', async () => {
    assert.equal(await withDeadline(Promise.resolve('reply'), 1000, () => new Error('late')), 'reply');
    await assert.rejects(withDeadline(Promise.reject(new Error('refused')), 1000, () => new Error('late')), /refused/);
  });

  it('rejects with the message when nothing comes', async () => {
    await assert.rejects(withDeadline(new Promise(() => undefined), 20, () => new Error('Command timed out')), /^Error: Command timed out$/);
  });

  it('takes a reply that arrived while the event loop stalled past the deadline, though the timers run before the socket is read', async () => {
    const [client, peer] = await socketPair();
    try {
      const reply = new Promise<string>((resolve) => client.once('data', (c: Buffer) => resolve(c.toString())));
      const answered = withDeadline(reply, 50, () => new Error('Command timed out'));
      // From the check phase the loop goes to its timers, whose deadline has passed, before it polls the socket.
      setImmediate(() => {
        peer.write('reply');
        stall(300);
      });
      assert.equal(await answered, 'reply', 'before, "Command timed out" for a reply waiting in the socket');
    } finally {
      client.destroy();
      peer.destroy();
    }
  });
});
