import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express from 'express';
import { BoundedExpressAdapter, MAX_REQUESTS_PER_CONNECTION } from './http-server.adapter.js';
import { within } from '../../test/support/within.js';

const BODY_DEADLINE_MS = 400;

/** A raw connection that collects what the server sends and notes when it closes. */
/** A connection to `port` that keeps what it receives and whether it has closed; nothing times out by itself. */
async function converse(port: number): Promise<{ s: Socket; text: () => string; isClosed: () => boolean; closed: Promise<void> }> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString('latin1')));
  let isClosed = false;
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve(void (isClosed = true))));
  return { s, text: () => text, isClosed: () => isClosed, closed };
}

/** `converse`, whose `closed` gives the connection's age at its close and fails if it is still open after 5 s. */
async function open(port: number): Promise<{ s: Socket; text: () => string; closed: Promise<number> }> {
  const c = await converse(port);
  const started = Date.now();
  const closed = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the connection is still open after 5 s')), 5000);
    void c.closed.then(() => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
  return { s: c.s, text: c.text, closed };
}

/** Sends `total` bytes of request body in 1 000-byte pieces every 500 ms, until done or the connection has closed. */
async function trickle(c: { s: Socket; isClosed: () => boolean }, total: number): Promise<void> {
  for (let sent = 0; sent < total && !c.isClosed(); sent += 1000) {
    c.s.write('y'.repeat(1000));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Resolves once what `c` received ends with `suffix`. */
async function received(c: { text: () => string }, suffix: string): Promise<void> {
  while (!c.text().endsWith(suffix)) await new Promise((r) => setTimeout(r, 10));
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
    // A front handler (the tunnel router) answering a host of its own at once, its body unread (an unknown tunnel).
    adapter.setFrontHandler((req, res) => {
      // A refusal that closes the connection (the tunnel router's 413, 501, 429…).
      if (req.headers.host === 'refuse.test') {
        res.writeHead(413, { 'content-length': 9, connection: 'close' });
        res.end('too big\r\n');
        return true;
      }
      if (req.headers.host !== 'front.test') return false;
      res.setHeader('content-length', 10);
      res.end('not found\n');
      return true;
    });
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

  it('drops the connection when the body of a request answered 417 (an unknown expectation) keeps trickling', async () => {
    refused.length = 0;
    const c = await open(port);
    c.s.write('POST /reads HTTP/1.1\r\nHost: x\r\nExpect: x\r\nContent-Length: 100000\r\n\r\nx');
    const trickle = setInterval(() => c.s.write('x'), 50);
    try {
      await c.closed;
    } finally {
      clearInterval(trickle);
    }
    assert.match(c.text(), /^HTTP\/1\.1 417 Expectation Failed\r\n[\s\S]*\r\n\r\nexpectation not supported\n$/);
    assert.deepEqual(refused, []);
  });

  it('drops the connection when the body of a request a front handler answered at once keeps trickling', async () => {
    const c = await open(port);
    c.s.write('POST / HTTP/1.1\r\nHost: front.test\r\nContent-Length: 100000\r\n\r\nx');
    const trickle = setInterval(() => c.s.write('x'), 50);
    try {
      await c.closed;
    } finally {
      clearInterval(trickle);
    }
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nnot found\n$/);
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
    const c = await converse(port);
    c.s.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\nCONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n');
    await within(c.closed, 5000, 'the 405 after the late answer');
    const text = c.text();
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 405'], text);
    assert.match(text, /late answerHTTP\/1\.1 405/);
    assert.deepEqual(refused, ['connect']);
  });

  it('processes nothing pipelined behind a request answered with Connection: close (RFC 9112 §9.6), refused by the listener or by a front handler', async () => {
    for (const first of ['GET /first HTTP/1.1\r\nHost: a@b\r\n\r\n', 'POST /first HTTP/1.1\r\nHost: refuse.test\r\nContent-Length: 3\r\n\r\nabc']) {
      seen.length = 0;
      const c = await converse(port);
      c.s.write(first + 'GET /pipelined HTTP/1.1\r\nHost: x\r\n\r\nPOST /ignores HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
      try {
        await within(c.closed, 3000, 'the close after the refusal');
      } finally {
        c.s.destroy();
      }
      assert.deepEqual(c.text().match(/HTTP\/1\.1 \d+/g), [first.includes('a@b') ? 'HTTP/1.1 400' : 'HTTP/1.1 413'], c.text());
      assert.deepEqual(seen, [], 'no request behind the refusal reached a route');
    }
  });

  it('answers 414 to a request target past the head limit, 431 to a header value that only reads like a request line where a packet starts', async () => {
    const long = '/' + 'a'.repeat(20000);
    const cases: [string[], RegExp, string][] = [
      [[`GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n`], /^HTTP\/1\.1 414 /, 'target_too_long'],
      // Pipelined in its own packet behind a request that was answered: the line stops at the space before the version.
      [['GET /late HTTP/1.1\r\nHost: x\r\n\r\n', `GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n`], /^HTTP\/1\.1 200 [^]*HTTP\/1\.1 414 /, 'target_too_long'],
      // One header whose value is a request line, its second half in a packet of its own.
      [['GET /late HTTP/1.1\r\nHost: x\r\nX-Forwarded-Request: ', `GET ${long}\r\n\r\n`], /^HTTP\/1\.1 431 /, 'head_too_large'],
    ];
    for (const [pieces, expected, reason] of cases) {
      refused.length = 0;
      const c = await converse(port);
      try {
        for (const piece of pieces) {
          c.s.write(piece);
          if (piece.startsWith('GET /late') && piece.endsWith('\r\n\r\n')) await received(c, 'late answer');
          else await new Promise((r) => setTimeout(r, 100));
        }
        await within(c.closed, 3000, 'the close after the refusal');
      } finally {
        c.s.destroy();
      }
      assert.match(c.text(), expected, pieces.join('').slice(0, 60));
      assert.deepEqual(refused, [reason]);
    }
  });

  it('closes the connection after an HTTP/1.0 request with Transfer-Encoding, even one asking to keep it (RFC 9112 §6.1)', async () => {
    seen.length = 0;
    const c = await converse(port);
    c.s.write(
      'POST /reads HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' +
        'POST /ignores HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n',
    );
    try {
      await within(c.closed, 3000, 'the close after the response');
    } finally {
      c.s.destroy();
    }
    const text = c.text();
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200'], text);
    assert.match(text, /\r\nConnection: close\r\n[^]*read 5$/i);
    assert.deepEqual(seen, ['/reads']);
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
    const c = await converse(port);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await received(c, 'ok');
    c.s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    // Past the next-request deadline (keep-alive 5 s + head timeout 1 s + two checks), talking all along.
    const started = Date.now();
    while (Date.now() - started < 9500 && !c.isClosed()) {
      c.s.write('x');
      await new Promise((r) => setTimeout(r, 500));
    }
    c.s.destroy();
    assert.equal(c.isClosed(), false, 'the upgraded connection was closed');
    const text = c.text();
    assert.doesNotMatch(text, /408/);
    assert.match(text, /101 Switching Protocols\r\n[^]*\r\n\r\nx+$/);
    assert.deepEqual(refused, []);
  });

  it('serves the next request after an early answer whose upload outlasts the next-request deadline', async () => {
    const c = await converse(port);
    const total = 19 * 1000;
    c.s.write(`POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
    // 9.5 s of upload after the answer, past keep-alive 5 s + head timeout 1 s + two checks, never idle 5 s.
    await trickle(c, total);
    assert.equal(c.isClosed(), false, `cut during the upload: ${c.text()}`);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(c.closed, 5000, 'the second answer');
    assert.deepEqual(c.text().match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200'], c.text());
    assert.deepEqual(refused, []);
  });

  it('closes a connection that dribbles empty lines after a response instead of a request (408), however often they come', async () => {
    const c = await converse(port);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    // Each CRLF renews Node's keep-alive socket timeout (5 s), and none starts a request (RFC 9112 §2.2).
    const dribble = setInterval(() => c.s.write('\r\n'), 1000);
    const started = Date.now();
    try {
      await within(c.closed, 15_000, 'the 408');
    } finally {
      clearInterval(dribble);
      c.s.destroy();
    }
    assert.ok(Date.now() - started < 12_000);
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nokHTTP\/1\.1 408 Request Timeout\r\n[^]*\r\n\r\nrequest head not received in time\n$/);
    assert.deepEqual(refused, ['head_timeout']);
  });

  it('bounds the gap after a 417 to an unknown expectation too, and does not cut that request\'s upload with the deadline before it', async () => {
    refused.length = 0;
    const c = await converse(port);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await received(c, 'ok');
    // Node answers this one itself (417, no 'request' event); its body keeps coming, read and dropped.
    const total = 19 * 1000;
    c.s.write(`POST /early HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: ${total}\r\n\r\n`);
    // 9.5 s of upload, past keep-alive 5 s + head timeout 1 s + two checks after the first answer.
    await trickle(c, total);
    assert.equal(c.isClosed(), false, `cut during the upload: ${c.text()}`);
    assert.deepEqual(c.text().match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 417'], c.text());
    // Then empty lines instead of a next request: the deadline after the 417 closes the connection.
    const dribble = setInterval(() => c.s.write('\r\n'), 1000);
    try {
      await within(c.closed, 15_000, 'the 408 after the 417');
    } finally {
      clearInterval(dribble);
      c.s.destroy();
    }
    assert.deepEqual(c.text().match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 417', 'HTTP/1.1 408'], c.text());
    assert.deepEqual(refused, ['head_timeout']);
  });

  it('counts one refusal for a next request whose head times out: the next-request deadline does not fire into its 408', async () => {
    refused.length = 0;
    // A client that does not close its side after the server's (a slowloris tool): the 408's socket lingers 5 s.
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.on('error', () => undefined);
    await once(s, 'connect');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await received({ text: () => text }, 'ok');
    // Within the keep-alive timeout, a head that never completes: Node's head timer answers it 408 about 2 s later.
    await new Promise((r) => setTimeout(r, 4000));
    s.write('GET /ok HTTP/1.1\r\nHost: x\r\n');
    // Past the deadline armed after the first response (keep-alive 5 s + head timeout 1 s + two checks).
    await new Promise((r) => setTimeout(r, 5500));
    s.destroy();
    assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 408'], text);
    assert.deepEqual(refused, ['head_timeout']);
  });

  it('closes the connection after the response to its last request, which says Connection: close (RFC 9112 §9.6)', async () => {
    refused.length = 0;
    const c = await converse(port);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(MAX_REQUESTS_PER_CONNECTION));
    // Node says close on the last response but would keep the connection until its keep-alive timeout (5 s),
    // answering further requests 503 itself, outside the next-request deadline.
    try {
      await within(c.closed, 4000, 'the close after the last response');
    } finally {
      c.s.destroy();
    }
    const heads = c.text().split(/(?=HTTP\/1\.1 \d{3} )/);
    assert.equal(heads.length, MAX_REQUESTS_PER_CONNECTION);
    assert.ok(heads.every((h) => h.startsWith('HTTP/1.1 200 ')));
    assert.match(heads.at(-1)!, /\r\nConnection: close\r\n/i);
    assert.deepEqual(refused, []);
  });

  it('serves a next request that starts late in the keep-alive timeout and takes most of the head timeout', async () => {
    const c = await converse(port);
    c.s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 4500));
    c.s.write('GET /ok HTTP/1.1\r\n');
    await new Promise((r) => setTimeout(r, 800));
    c.s.write('Host: x\r\nConnection: close\r\n\r\n');
    await c.closed;
    assert.equal(c.text().match(/\r\n\r\nok/g)?.length, 2, c.text());
  });
});
