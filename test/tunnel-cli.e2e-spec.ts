import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { exitCode, runCli, type CliProcess } from './support/process.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { TUNNEL_DOMAIN, httpTo, startHttpService, tunnelEnv, waitFor, type HttpService } from './support/tunnel.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/tunnel.js', import.meta.url));

/** A child process whose stdout lines are collected. */
const SECRET = 'SECRET-BODY-7f3a9c';

describe('wsproxy-tunnel bin against the wsproxy server process', () => {
  let server: CliProcess;
  let port: number;
  let svc: HttpService;
  let echo: TestTarget;

  before(async () => {
    svc = await startHttpService((_req, body, res) => res.end(`echo:${body.toString()}`));
    echo = await echoTarget();
    server = runCli(MAIN, [], { ...(await tunnelEnv({}, 4)), PORT: '0', BIND_HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    try {
      await waitFor(
        () => {
          if (server.child.exitCode !== null) throw new Error(`server exited ${server.child.exitCode}: ${server.stderr}`);
          return server.lines.some((l) => l.includes('"event":"listening"'));
        },
        30000,
        'server listening',
      );
    } catch (err) {
      server.child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\nstdout: ${server.lines.slice(-5).join('\n')}\nstderr: ${server.stderr}`);
    }
    port = (JSON.parse(server.lines.find((l) => l.includes('"event":"listening"'))!) as { port: number }).port;
  });
  after(async () => {
    server.child.kill('SIGTERM');
    await exitCode(server);
    await svc.close();
    await echo.close();
  });

  it('prints the URL and raw port, forwards HTTP and TCP, exits 0 on SIGINT; the server logs the tunnel without bodies', async () => {
    // `--to` as a bare port: the local service on 127.0.0.1, and printed so.
    const svcPort = svc.target.split(':')[1]!;
    const cli = runCli(CLI, ['--proxy', `ws://127.0.0.1:${port}/tunnel`, '--to', svcPort, '--tcp-to', `127.0.0.1:${echo.port}`]);
    try {
      await waitFor(() => cli.lines.length >= 2, 10000, 'CLI ready lines');
      const url = /^tunnel url: (http:\/\/([0-9a-f]{16})\.tunnel\.test) -> http:\/\/127\.0\.0\.1:(\d+)$/.exec(cli.lines[0]);
      assert.ok(url, cli.lines[0]);
      assert.equal(url[3], svcPort);
      const raw = /^raw port: (\d+) -> 127\.0\.0\.1:\d+$/.exec(cli.lines[1]);
      assert.ok(raw, cli.lines[1]);

      const res = await httpTo(port, `${url[2]}.${TUNNEL_DOMAIN}`, { method: 'POST', body: SECRET });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `echo:${SECRET}`);

      // v1 has no half-close: read the echo before ending.
      const s = connect({ host: '127.0.0.1', port: Number(raw[1]) });
      s.write('over tcp');
      let echoed = '';
      s.on('data', (c: Buffer) => (echoed += c.toString()));
      await waitFor(() => echoed.length >= 8, 5000, 'echo');
      assert.equal(echoed, 'over tcp');
      s.end();
      await once(s, 'close');

      cli.child.kill('SIGINT');
      assert.equal(await exitCode(cli), 0);

      await waitFor(() => server.lines.some((l) => l.includes('"event":"tunnel_ended"')), 5000, 'tunnel_ended log');
      const registered = JSON.parse(server.lines.find((l) => l.includes('"event":"tunnel_registered"'))!) as Record<string, unknown>;
      const ended = JSON.parse(server.lines.find((l) => l.includes('"event":"tunnel_ended"'))!) as Record<string, unknown>;
      assert.equal(registered.user, 'anonymous');
      assert.equal(registered.subdomain, url[2]);
      assert.equal(registered.rawPort, Number(raw[1]));
      assert.equal(ended.subdomain, url[2]);
      assert.equal(ended.httpRequests, 1);
      assert.equal(ended.tcpConnections, 1);
      assert.equal(typeof ended.durationMs, 'number');
      assert.ok(!server.lines.some((l) => l.includes(SECRET)), 'bodies never reach the logs');
    } finally {
      cli.child.kill('SIGKILL');
    }
  });

  it('exits 1 with the refusal when the proxy refuses', async () => {
    const cli = runCli(CLI, ['--proxy', `ws://127.0.0.1:${port}/tunnel?control=nope`, '--to', svc.target]);
    assert.equal(await exitCode(cli), 1);
    assert.match(cli.stderr, /refused: 400/);
  });

  it('never prints the token, whole or in pieces, when a proxy echoes it in a refusal or a close reason', async () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyX2NsaSJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0LXRvby1sb25n';
    const [, payload, signature] = token.split('.') as [string, string, string];
    // A stand-in for a proxy (or an ingress in front of it) that echoes what it was sent.
    const { createServer } = await import('node:http');
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ noServer: true });
    const echoing = createServer();
    echoing.on('upgrade', (req, socket, head) => {
      if (req.url?.includes('close')) return wss.handleUpgrade(req, socket, head, (ws) => ws.close(4000, `x ${token.slice(0, 100)}`));
      const body = `bad token ${token} sig=${signature}`;
      socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    });
    await new Promise<void>((resolve) => echoing.listen(0, '127.0.0.1', resolve));
    const at = (echoing.address() as import('node:net').AddressInfo).port;
    try {
      for (const [path, how] of [
        ['/tunnel', 'refusal'],
        ['/tunnel?close=1', 'close reason'],
      ] as const) {
        for (const args of [['--token', token], []]) {
          const cli = runCli(CLI, ['--proxy', `ws://127.0.0.1:${at}${path}`, '--to', svc.target, ...args], { WSPROXY_TOKEN: token });
          assert.equal(await exitCode(cli), 1, cli.stderr);
          assert.match(cli.stderr, how === 'refusal' ? /refused: 401 bad token \[REDACTED\] sig=\[REDACTED\]/ : /\[REDACTED\]/, how);
          for (const piece of [token, payload, signature, token.slice(0, 40)]) assert.ok(!cli.stderr.includes(piece), `${how}: ${cli.stderr}`);
        }
      }
    } finally {
      wss.close();
      echoing.closeAllConnections();
      await new Promise((resolve) => echoing.close(resolve));
    }
  });

  // parseArgs quotes a stray argument ("Unexpected argument '<it>'") and parseTarget a bad target, and the usage
  // errors were printed as they were: a token given without --token, or in a --to URL, reached the terminal.
  it('never prints the token in a usage error', async () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyX2NsaSJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0LXRvby1sb25n';
    const proxy = ['--proxy', 'ws://127.0.0.1:1/tunnel'];
    const stray = runCli(CLI, [...proxy, '--to', svc.target, token]);
    assert.equal(await exitCode(stray), 2);
    assert.match(stray.stderr, /^wsproxy-tunnel: unexpected argument: wsproxy-tunnel takes options only\n\nusage: /);
    const inUrl = runCli(CLI, [...proxy, '--to', `http://${svc.target}/?token=${token}`]);
    assert.equal(await exitCode(inUrl), 2);
    assert.match(inUrl.stderr, /^wsproxy-tunnel: invalid /);
    // A value typed without its space: parseArgs's message quotes the whole unknown option.
    const glued = runCli(CLI, [...proxy, '--to', svc.target, `--token${token}`]);
    assert.equal(await exitCode(glued), 2);
    assert.match(glued.stderr, /^wsproxy-tunnel: unknown option --token… \(its value goes after a space or =\)\n\nusage: /);
    for (const cli of [stray, inUrl, glued]) assert.ok(!cli.stderr.includes(token.split('.')[1]!), cli.stderr);
  });

  it('exits 2 with usage on bad arguments', async () => {
    const cli = runCli(CLI, ['--to', svc.target]);
    assert.equal(await exitCode(cli), 2);
    assert.match(cli.stderr, /--proxy must be a ws:\/\/ or wss:\/\/ URL/);
    assert.match(cli.stderr, /usage: wsproxy-tunnel/);
  });
});
