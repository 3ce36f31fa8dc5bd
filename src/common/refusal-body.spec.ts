import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { MAX_REASON_BYTES, printable, readRefusalBody } from './refusal-body.js';

async function refusalFrom(body: (res: import('node:http').ServerResponse) => void): Promise<string> {
  const server = createServer((_req, res) => body(res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' }, resolve).on('error', reject).end();
    });
    return await new Promise<string>((resolve) => readRefusalBody(res, resolve));
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

describe('readRefusalBody', () => {
  it('keeps the reason, trimmed', async () => {
    assert.equal(await refusalFrom((res) => res.writeHead(401).end('token missing\n')), 'token missing');
  });

  it('keeps the first KiB of an endless body and stops reading it', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const reason = await refusalFrom((res) => {
      res.writeHead(401);
      const pump = (): void => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      pump();
    });
    assert.equal(reason.length, MAX_REASON_BYTES);
  });
});

describe('printable', () => {
  it('shows control characters as ?, so a proxy cannot drive the terminal', () => {
    assert.equal(printable('ok \u001b[2J\u001b]0;title\u0007\r\nend\u009b'), 'ok ?[2J?]0;title???end?');
    assert.equal(printable('token missing'), 'token missing');
  });
});
