import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FIN_WATCH_AFTER_MS, SocketGoneSignal } from './client-gone.js';

/**
 * A loopback connection whose server end is half-open capable and unread, as an upgrade socket is during admission.
 * `read`: Node keeps reading it into its buffer, as it does an upgrade socket after the HTTP parser.
 */
async function upgradeLikePair(read = false): Promise<{ client: Socket; server: Socket; close(): void }> {
  const srv = createServer({ allowHalfOpen: true, pauseOnConnect: !read });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const client = connect((srv.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const [server] = await accepted;
  server.on('error', () => undefined);
  srv.close();
  return { client, server, close: () => (client.destroy(), server.destroy()) };
}

describe('SocketGoneSignal', () => {
  it('does not read the socket during a fast step', async () => {
    const { client, server, close } = await upgradeLikePair();
    try {
      const signal = new SocketGoneSignal(server);
      const listener = (): void => undefined;
      signal.addEventListener('abort', listener);
      signal.removeEventListener('abort', listener);
      client.write('early');
      await sleep(FIN_WATCH_AFTER_MS + 100);
      assert.notEqual(server.readableFlowing, true, 'never set reading');
      assert.equal(signal.release(), null);
    } finally {
      close();
    }
  });

  it('notices a FIN once a step has waited, and aborts', async () => {
    const { client, server, close } = await upgradeLikePair();
    try {
      const signal = new SocketGoneSignal(server);
      let aborted = false;
      signal.addEventListener('abort', () => (aborted = true));
      await sleep(FIN_WATCH_AFTER_MS + 50);
      client.end();
      await Promise.race([once(server, 'close'), sleep(2000).then(() => assert.fail('the FIN went unnoticed'))]);
      assert.equal(aborted, true);
      assert.equal(signal.aborted, true);
    } finally {
      close();
    }
  });

  it('notices a FIN Node read before the watch began (its end already emitted), once the watch begins', async () => {
    const { client, server, close } = await upgradeLikePair(true);
    try {
      const ended = once(server, 'end');
      client.end();
      await ended;
      const signal = new SocketGoneSignal(server);
      let aborted = false;
      signal.addEventListener('abort', () => (aborted = true));
      await Promise.race([once(server, 'close'), sleep(2000).then(() => assert.fail('the FIN went unnoticed'))]);
      assert.equal(aborted, true);
    } finally {
      close();
    }
  });

  it('hands the bytes read while watching to the handshake, then lets the socket flow to its next reader', async () => {
    const { client, server, close } = await upgradeLikePair();
    try {
      const signal = new SocketGoneSignal(server);
      const listener = (): void => undefined;
      signal.addEventListener('abort', listener);
      await sleep(FIN_WATCH_AFTER_MS + 50);
      client.write('early bytes');
      await sleep(50);
      signal.removeEventListener('abort', listener);
      assert.equal(signal.release()?.toString(), 'early bytes');
      const later: Buffer[] = [];
      server.on('data', (c: Buffer) => later.push(c));
      client.write('later');
      await sleep(50);
      assert.equal(Buffer.concat(later).toString(), 'later');
      assert.equal(signal.aborted, false);
    } finally {
      close();
    }
  });
});
