import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { startApp, type TestApp } from './support/app.js';
import { exitCode, runCli, type CliProcess } from './support/process.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { expectRefusal, openWs } from './support/ws-client.js';
import { TUNNEL_DOMAIN, httpTo, tunnelEnv, waitFor } from './support/tunnel.js';

const CLI = fileURLToPath(new URL('../src/cli/tunnel.js', import.meta.url));

function run(args: string[]): CliProcess {
  return runCli(CLI, args);
}

/** Starts the CLI and waits for its two ready lines; returns the subdomain and raw port. */
async function ready(p: CliProcess): Promise<{ sub: string; rawPort: number }> {
  await waitFor(
    () => {
      if (p.child.exitCode !== null) throw new Error(`CLI exited ${p.child.exitCode}: ${p.stderr}`);
      return p.lines.length >= 2;
    },
    15000,
    'CLI ready lines',
  );
  const url = /^tunnel url: http:\/\/([0-9a-f]{16})\.tunnel\.test -> http:\/\/127\.0\.0\.1:\d+$/.exec(p.lines[0]);
  assert.ok(url, p.lines[0]);
  const raw = /^raw port: (\d+)(?: -> 127\.0\.0\.1:\d+)?$/.exec(p.lines[1]);
  assert.ok(raw, p.lines[1]);
  return { sub: url[1], rawPort: Number(raw[1]) };
}

describe('wsproxy-tunnel speaks v2 by default', () => {
  let app: TestApp;
  let web: Server;
  let webPort: number;
  let echo: TestTarget;

  before(async () => {
    app = await startApp(await tunnelEnv({}, 4));
    echo = await echoTarget();
    web = createServer((_req, res) => res.end('hello over http'));
    const wss = new WebSocketServer({ server: web });
    wss.on('connection', (ws) => ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(d, { binary: isBinary })));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webPort = (web.address() as AddressInfo).port;
  });
  after(async () => {
    await app.close();
    await echo.close();
    web.closeAllConnections();
    await new Promise<void>((resolve) => web.close(() => resolve()));
  });

  it('prints the URL and raw port; WebSockets pass through the subdomain; exits 0 on SIGINT', async () => {
    const cli = run(['--proxy', `${app.wsUrl}/tunnel`, '--to', `127.0.0.1:${webPort}`, '--tcp-to', `127.0.0.1:${echo.port}`]);
    try {
      const { sub, rawPort } = await ready(cli);
      assert.ok(rawPort > 0);
      const host = `${sub}.${TUNNEL_DOMAIN}`;
      assert.equal((await httpTo(app.port, host)).body.toString(), 'hello over http');
      const ws = await openWs(`ws://127.0.0.1:${app.port}/`, { headers: { host } });
      const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
      ws.send('through the tunnel');
      assert.equal(await echoed, 'through the tunnel');
      ws.close();
      cli.child.kill('SIGINT');
      assert.equal(await exitCode(cli), 0);
      assert.equal(cli.stderr.includes('note:'), false, cli.stderr);
    } finally {
      cli.child.kill('SIGKILL');
    }
  });

  it('--protocol 1 speaks v1: HTTP works, WebSocket upgrades get 501', async () => {
    const cli = run(['--proxy', `${app.wsUrl}/tunnel`, '--to', `127.0.0.1:${webPort}`, '--protocol', '1']);
    try {
      const { sub } = await ready(cli);
      const host = `${sub}.${TUNNEL_DOMAIN}`;
      assert.equal((await httpTo(app.port, host)).body.toString(), 'hello over http');
      assert.equal((await expectRefusal(`ws://127.0.0.1:${app.port}/`, { headers: { host } })).status, 501);
    } finally {
      cli.child.kill('SIGKILL');
    }
  });

  // Writing the ready lines to a pipe nobody reads raised an unhandled EPIPE: the tunnel died as it came up.
  it('runs on when nobody reads its stdout, saying so on stderr', async () => {
    const cli = run(['--proxy', `${app.wsUrl}/tunnel`, '--to', `127.0.0.1:${webPort}`]);
    try {
      cli.child.stdout!.destroy();
      await waitFor(() => cli.stderr.includes('\n') || cli.child.exitCode !== null, 15_000, 'a line on stderr');
      assert.equal(cli.stderr, 'wsproxy-tunnel: writing stdout failed: write EPIPE; the tunnel runs on\n');
      cli.child.kill('SIGINT');
      assert.equal(await exitCode(cli), 0, cli.stderr);
      assert.match(cli.stderr, /^tunnel closed: 1000\b/m);
    } finally {
      cli.child.kill('SIGKILL');
    }
  });

  it('exits 2 on an unknown --protocol', async () => {
    const cli = run(['--proxy', `${app.wsUrl}/tunnel`, '--to', `127.0.0.1:${webPort}`, '--protocol', '3']);
    assert.equal(await exitCode(cli), 2);
    assert.match(cli.stderr, /--protocol must be 1 or 2/);
  });
});
