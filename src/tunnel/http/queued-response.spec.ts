import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { closeWithConnection } from './queued-response.js';

describe('closeWithConnection', () => {
  let server: Server;
  let port: number;
  const closes = new Map<string, number>();
  const responses = new Map<string, ServerResponse>();

  before(async () => {
    server = createServer((req, res) => {
      const path = req.url!;
      closeWithConnection(req, res);
      closes.set(path, 0);
      res.on('close', () => closes.set(path, closes.get(path)! + 1));
      responses.set(path, res);
      req.resume();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  async function pipelined(paths: string[]): Promise<Socket> {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    const deadline = Date.now() + 5000;
    while (!paths.every((p) => responses.has(p))) {
      if (Date.now() > deadline) throw new Error('requests not received');
      await new Promise((r) => setTimeout(r, 5));
    }
    return s;
  }

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

  it('closes every response queued behind the one holding the socket, once, when the connection dies', async () => {
    const s = await pipelined(['/a1', '/a2', '/a3']);
    assert.equal(responses.get('/a2')!.socket, null, 'queued behind /a1');
    s.destroy();
    await settle();
    assert.deepEqual(['/a1', '/a2', '/a3'].map((p) => closes.get(p)), [1, 1, 1]);
    assert.ok(responses.get('/a3')!.destroyed);
  });

  it('leaves a queued response that gets its turn to Node: one close after it is sent, none more when the connection ends', async () => {
    const s = await pipelined(['/b1', '/b2']);
    const received: Buffer[] = [];
    s.on('data', (c: Buffer) => received.push(c));
    responses.get('/b1')!.end('one');
    responses.get('/b2')!.end('two');
    const deadline = Date.now() + 5000;
    while (!Buffer.concat(received).toString().endsWith('two')) {
      if (Date.now() > deadline) throw new Error('responses not received');
      await new Promise((r) => setTimeout(r, 5));
    }
    s.destroy();
    await settle();
    assert.deepEqual([closes.get('/b1'), closes.get('/b2')], [1, 1]);
  });
});
