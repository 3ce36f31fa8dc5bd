import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FrontRequestHandlers } from './front-requests.js';

function fetchText(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('FrontRequestHandlers', () => {
  const front = new FrontRequestHandlers();
  const seen: string[] = [];
  let server: Server;
  let port: number;

  before(async () => {
    front.add((req, res) => {
      seen.push(`first ${req.url}`);
      if (req.url === '/first') {
        res.end('first');
        return true;
      }
      if (req.url === '/throws') throw new Error('handler bug');
      return false;
    });
    front.add((req, res) => {
      seen.push(`second ${req.url}`);
      if (req.url !== '/second') return false;
      res.end('second');
      return true;
    });
    server = createServer((req, res) => {
      if (!front.dispatch(req, res)) res.end('fallback');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => server.close());

  it('stops at the first handler that takes the request', async () => {
    seen.length = 0;
    assert.deepEqual(await fetchText(port, '/first'), { status: 200, body: 'first' });
    assert.deepEqual(seen, ['first /first']);
  });

  it('asks each handler in order, then passes the request on', async () => {
    seen.length = 0;
    assert.deepEqual(await fetchText(port, '/second'), { status: 200, body: 'second' });
    assert.deepEqual(await fetchText(port, '/other'), { status: 200, body: 'fallback' });
    assert.deepEqual(seen, ['first /second', 'second /second', 'first /other', 'second /other']);
  });

  it('answers 500 when a handler throws, and the server goes on', async () => {
    assert.deepEqual(await fetchText(port, '/throws'), { status: 500, body: 'internal error\n' });
    assert.deepEqual(await fetchText(port, '/first'), { status: 200, body: 'first' });
  });
});
