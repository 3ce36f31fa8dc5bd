import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express from 'express';
import { BoundedExpressAdapter } from './http-server.adapter.js';

const BODY_DEADLINE_MS = 400;

/** A raw connection that collects what the server sends and notes when it closes. */
async function open(port: number): Promise<{ s: Socket; text: () => string; closed: Promise<number> }> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  const started = Date.now();
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the connection is still open after 5 s')), 5000);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
  return { s, text: () => Buffer.concat(chunks).toString('latin1'), closed };
}

describe('BoundedExpressAdapter', () => {
  let server: Server;
  let port: number;

  before(async () => {
    const app = express();
    // A route that never reads its body, and one that answers once the body has arrived.
    app.post('/ignores', (_req, res) => void res.send('answered'));
    app.post('/reads', (req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => void res.send(`read ${n}`));
    });
    const adapter = new BoundedExpressAdapter(app, { headersTimeoutMs: 5000, maxHeaderBytes: 16384, bodyDeadlineMs: BODY_DEADLINE_MS });
    adapter.initHttpServer();
    server = adapter.getHttpServer() as Server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('leaves bodies to routes: Node’s whole-request timeout is off (tunnel uploads stream for as long as they flow)', () => {
    assert.equal(server.requestTimeout, 0);
    assert.equal(server.headersTimeout, 5000);
  });

  it('answers 408 and closes when a body a route waits for stops arriving', async () => {
    const c = await open(port);
    c.s.write('POST /reads HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b');
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*\r\n\r\nrequest body not received in time\n$/);
  });

  it('drops the connection when a body nobody reads keeps trickling after the answer', async () => {
    const c = await open(port);
    c.s.write('POST /ignores HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx');
    const trickle = setInterval(() => c.s.write('x'), 50);
    try {
      await c.closed;
    } finally {
      clearInterval(trickle);
    }
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nanswered$/);
  });

  it('leaves a body that arrived whole alone: the connection goes on to its next request', async () => {
    const c = await open(port);
    c.s.write('POST /reads HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd');
    await new Promise((r) => setTimeout(r, BODY_DEADLINE_MS * 2));
    c.s.write('POST /reads HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nef');
    await c.closed;
    const answers = c.text().match(/\r\n\r\nread \d/g);
    assert.deepEqual(answers, ['\r\n\r\nread 4', '\r\n\r\nread 2']);
  });
});
