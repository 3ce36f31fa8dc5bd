import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { startApp, type TestApp } from './support/app.js';
import { dial } from './support/tcp-client.js';
import { TUNNEL_DOMAIN, startHttpService, tunnelEnv, waitFor, type HttpService } from './support/tunnel.js';

/** A local service that answers 205 Reset Content with a body (which RFC 9110 §15.3.6 forbids), and 200 otherwise. */
function resetContentService(): Promise<HttpService> {
  return startHttpService((req, _body, res) => {
    if (req.url === '/form') {
      res.writeHead(205, { 'content-type': 'text/plain', 'x-from': 'service' });
      res.end('stale form');
      return;
    }
    res.end('after');
  });
}

for (const protocol of [1, 2] as const) {
  describe(`a tunnel response 205 Reset Content with a body (protocol v${protocol}, reference client)`, () => {
    let app: TestApp;
    let svc: HttpService;
    let client: TunnelClient;
    let host: string;

    before(async () => {
      app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
      svc = await resetContentService();
      client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target, protocol });
      host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    });
    after(async () => {
      await client.close();
      await app.close();
      await svc.close();
    });

    it('reaches the requester with no content (Content-Length: 0), the stream is done, and the keep-alive connection serves the next request', async () => {
      const s: Socket = await dial(app.port);
      try {
        let text = '';
        s.on('data', (c: Buffer) => (text += c.toString('latin1')));
        s.write(`POST /form HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\n\r\nname`);
        await waitFor(() => /^HTTP\/1\.1 205 /.test(text) && text.includes('\r\n\r\n'), 10_000, 'the 205');
        s.write(`GET /next HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        await waitFor(() => text.endsWith('\r\n\r\nafter'), 10_000, 'the answer to the next request on the same connection');

        const [first, second] = text.split(/(?=HTTP\/1\.1 \d{3} )/);
        assert.match(first, /^HTTP\/1\.1 205 /);
        assert.match(first, /\r\nx-from: service\r\n/i);
        assert.match(first, /\r\ncontent-length: 0\r\n/i);
        assert.doesNotMatch(first, /transfer-encoding/i);
        assert.ok(first.endsWith('\r\n\r\n'), `the 205 carries content: ${JSON.stringify(first)}`);
        assert.doesNotMatch(text, /stale form/);
        assert.match(second, /^HTTP\/1\.1 200 /);
        // The 205's stream ended (the client's body and END were taken and dropped), not held until a timeout.
        const session = app.app.get(TunnelService).find(client.subdomain)!;
        await waitFor(() => session.counts().http === 0, 10_000, 'the streams to end');
      } finally {
        s.destroy();
      }
    });
  });
}
