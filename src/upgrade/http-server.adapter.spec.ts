import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express from 'express';
import { BoundedExpressAdapter } from './http-server.adapter.js';
import { within } from '../../test/support/within.js';

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
  const refused: string[] = [];
  /** Requests routes saw, by path. */
  const seen: string[] = [];

  before(async () => {
    const app = express();
    app.use((req, _res, next) => {
      seen.push(req.path);
      next();
    });
    // A route that never reads its body, and one that answers once the body has arrived.
    app.post('/ignores', (_req, res) => void res.send('answered'));
    app.post('/reads', (req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => void res.send(`read ${n}`));
    });
    // One that answers late (a tunnel waiting for its service), one whose response starts before its body is read.
    app.get('/late', (_req, res) => void setTimeout(() => res.send('late answer'), 300));
    app.post('/starts', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started');
      req.resume();
    });
    const adapter = new BoundedExpressAdapter(app, { headersTimeoutMs: 5000, maxHeaderBytes: 16384, bodyDeadlineMs: BODY_DEADLINE_MS });
    adapter.setRefusalListener((r) => void refused.push(r));
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

  const MALFORMED = /\r\n\r\nmalformed HTTP request\n$/;

  it('answers 400 when a body the parser refuses belongs to a request whose response has not started', async () => {
    for (const body of ['zz\r\nhello\r\n0\r\n\r\n', 'FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n', '5\nhello\n0\n\n', '5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n']) {
      refused.length = 0;
      const c = await open(port);
      c.s.write(`POST /reads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
      await c.closed;
      assert.match(c.text(), /^HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n/, JSON.stringify(body));
      assert.match(c.text(), MALFORMED);
      assert.deepEqual(refused, ['malformed_request']);
    }
  });

  it('drops the connection, counting no refusal, when the refused body belongs to a response already started', async () => {
    refused.length = 0;
    const c = await open(port);
    c.s.write('POST /starts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    c.s.write('zz\r\nhello\r\n0\r\n\r\n');
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n7\r\nstarted\r\n$/);
    assert.deepEqual(refused, []);
  });

  it('drops the connection, counting no refusal, when the refused body belongs to a response already out (keep-alive)', async () => {
    refused.length = 0;
    const c = await open(port);
    c.s.write('POST /ignores HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    // The answer is out and the connection kept alive: a 400 now would be read as the answer to the next request.
    c.s.write('zz\r\nhello\r\n0\r\n\r\n');
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nanswered$/);
    assert.deepEqual(refused, []);
  });

  it('answers a request pipelined before a malformed one in full, then 400, and parses nothing after', async () => {
    refused.length = 0;
    seen.length = 0;
    const c = await open(port);
    c.s.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    setTimeout(() => c.s.write('GET /third HTTP/1.1\r\nHost: x\r\n\r\n'), 50);
    await c.closed;
    const text = c.text();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nlate answerHTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(text, MALFORMED);
    assert.deepEqual(seen, ['/late']);
    assert.deepEqual(refused, ['malformed_request']);
  });

  it('answers a CONNECT pipelined behind a late response after that response, not in its place', async () => {
    refused.length = 0;
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\nCONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n');
    await within(once(s, 'close'), 5000, 'the 405 after the late answer');
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 405'], text);
    assert.match(text, /late answerHTTP\/1\.1 405/);
    assert.deepEqual(refused, ['connect']);
  });
});

describe('BoundedExpressAdapter between keep-alive requests', () => {
  let server: Server;
  let port: number;
  const refused: string[] = [];

  before(async () => {
    const app = express();
    app.get('/ok', (_req, res) => void res.send('ok'));
    // Answers at once, leaving the body unread (Node reads and drops it, and keeps the connection).
    app.post('/early', (_req, res) => void res.send('early'));
    const adapter = new BoundedExpressAdapter(app, { headersTimeoutMs: 1000, maxHeaderBytes: 16384 });
    adapter.setRefusalListener((r) => void refused.push(r));
    adapter.initHttpServer();
    server = adapter.getHttpServer() as Server;
    // An upgrade that echoes what it is sent, as a relay would through an echo target.
    server.on('upgrade', (_req, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('leaves alone a connection upgraded after a keep-alive response: no 408 into what it carries', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    let closed = false;
    s.once('close', () => (closed = true));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    while (!text.endsWith('ok')) await new Promise((r) => setTimeout(r, 10));
    s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    // Past the next-request deadline (keep-alive 5 s + head timeout 1 s + two checks), talking all along.
    const started = Date.now();
    while (Date.now() - started < 9500 && !closed) {
      s.write('x');
      await new Promise((r) => setTimeout(r, 500));
    }
    s.destroy();
    assert.equal(closed, false, 'the upgraded connection was closed');
    assert.doesNotMatch(text, /408/);
    assert.match(text, /101 Switching Protocols\r\n[^]*\r\n\r\nx+$/);
    assert.deepEqual(refused, []);
  });

  it('serves the next request after an early answer whose upload outlasts the next-request deadline', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    let closed = false;
    s.once('close', () => (closed = true));
    const total = 19 * 1000;
    s.write(`POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
    // 9.5 s of upload after the answer, past keep-alive 5 s + head timeout 1 s + two checks, never idle 5 s.
    for (let sent = 0; sent < total && !closed; sent += 1000) {
      s.write('y'.repeat(1000));
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(closed, false, `cut during the upload: ${text}`);
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(once(s, 'close'), 5000, 'the second answer');
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200'], text);
    assert.deepEqual(refused, []);
  });

  it('closes a connection that dribbles empty lines after a response instead of a request (408), however often they come', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    // Each CRLF renews Node's keep-alive socket timeout (5 s), and none starts a request (RFC 9112 §2.2).
    const dribble = setInterval(() => s.write('\r\n'), 1000);
    const started = Date.now();
    try {
      await Promise.race([once(s, 'close'), new Promise((_r, reject) => setTimeout(() => reject(new Error('still open after 15 s')), 15_000))]);
    } finally {
      clearInterval(dribble);
      s.destroy();
    }
    assert.ok(Date.now() - started < 12_000);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nokHTTP\/1\.1 408 Request Timeout\r\n[^]*\r\n\r\nrequest head not received in time\n$/);
    assert.deepEqual(refused, ['head_timeout']);
  });

  it('bounds the gap after a 417 to an unknown expectation too, and does not cut that request\'s upload with the deadline before it', async () => {
    refused.length = 0;
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    let closed = false;
    s.once('close', () => (closed = true));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    while (!text.endsWith('ok')) await new Promise((r) => setTimeout(r, 10));
    // Node answers this one itself (417, no 'request' event); its body keeps coming, read and dropped.
    const total = 19 * 1000;
    s.write(`POST /early HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: ${total}\r\n\r\n`);
    // 9.5 s of upload, past keep-alive 5 s + head timeout 1 s + two checks after the first answer.
    for (let sent = 0; sent < total && !closed; sent += 1000) {
      s.write('y'.repeat(1000));
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(closed, false, `cut during the upload: ${text}`);
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 417'], text);
    // Then empty lines instead of a next request: the deadline after the 417 closes the connection.
    const dribble = setInterval(() => s.write('\r\n'), 1000);
    try {
      await within(once(s, 'close'), 15_000, 'the 408 after the 417');
    } finally {
      clearInterval(dribble);
      s.destroy();
    }
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 417', 'HTTP/1.1 408'], text);
    assert.deepEqual(refused, ['head_timeout']);
  });

  it('serves a next request that starts late in the keep-alive timeout and takes most of the head timeout', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 4500));
    s.write('GET /ok HTTP/1.1\r\n');
    await new Promise((r) => setTimeout(r, 800));
    s.write('Host: x\r\nConnection: close\r\n\r\n');
    await once(s, 'close');
    assert.equal(text.match(/\r\n\r\nok/g)?.length, 2, text);
  });
});
