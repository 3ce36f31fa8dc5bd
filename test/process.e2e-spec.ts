import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { echoTarget, type TestTarget } from './support/targets.js';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { MAIN_JS, REPO_ROOT, startServiceProcess, type ServiceProcess } from './support/process.js';
import type { WebSocket } from 'ws';
import { closed, expectCloseRefusal, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { waitFor } from './support/tunnel.js';
import { UPGRADE_HEADERS } from './support/raw-http.js';
import { dial } from './support/tcp-client.js';
import { within } from './support/within.js';
import { REPEATED_SIGNAL_WINDOW_MS } from '../src/common/stop-signal-judge.js';

/**
 * Upgrades `path` on a raw connection (Host `host`) and returns it with the first bytes the service
 * sent (its 101); from then on it reads nothing and answers nothing, so a close handshake never completes.
 */
async function silentUpgrade(port: number, path: string, host = `127.0.0.1:${port}`): Promise<{ s: Socket; head: Buffer }> {
  const s = await dial(port);
  s.on('error', () => undefined);
  s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${UPGRADE_HEADERS}\r\n`);
  const head = await new Promise<Buffer>((resolve) => s.once('data', resolve));
  s.pause();
  return { s, head };
}

/** Sends `svc` SIGTERM and resolves with the milliseconds it took to exit, which must be with code 0. */
/** While the service drains: the live relay `ws` still carries bytes; once it closes, the service exits 0. */
async function relayCarriesThenExitIsClean(ws: WebSocket, svc: ServiceProcess): Promise<void> {
  const got = receiveBytes(ws, 4);
  ws.send(Buffer.from('ping'));
  assert.equal((await got).toString(), 'ping', 'the live relay still carries bytes');
  ws.close(1000);
  await closed(ws);
  assert.equal(await svc.exited, 0);
}

async function exitAfterSigterm(svc: ServiceProcess): Promise<number> {
  const started = Date.now();
  svc.child.kill('SIGTERM');
  assert.equal(await svc.exited, 0);
  return Date.now() - started;
}

describe('the built service as a process', () => {
  let echo: TestTarget;
  before(async () => {
    echo = await echoTarget();
  });
  after(async () => {
    await echo.close();
  });

  it('drains on SIGTERM: readiness 503, new upgrades 503, live relay runs on until it ends, exit 0', async () => {
    const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '20000' });
    const base = `127.0.0.1:${svc.port}`;
    const ws = await openWs(`ws://${base}/relay?host=127.0.0.1&port=${echo.port}`);
    assert.equal((await fetch(`http://${base}/health/ready`)).status, 200);
    svc.child.kill('SIGTERM');
    await waitFor(async () => (await fetch(`http://${base}/health/ready`)).status === 503, 10_000, 'readiness 503 once the drain starts');
    assert.equal((await fetch(`http://${base}/health`)).status, 200, 'liveness stays up while draining');
    const refused = await expectRefusal(`ws://${base}/relay?host=127.0.0.1&port=${echo.port}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body, 'server is draining');
    const closedRefusal = await expectCloseRefusal(`ws://${base}/relay?host=127.0.0.1&port=${echo.port}&errors=close`);
    assert.deepEqual(closedRefusal, { code: 4503, reason: 'server is draining' }, 'errors=close holds while draining');
    await relayCarriesThenExitIsClean(ws, svc);
  });

  it('closes live relays with 1001 when SHUTDOWN_TIMEOUT_MS passes', async () => {
    const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '300' });
    const ws = await openWs(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}`);
    svc.child.kill('SIGTERM');
    const { code } = await closed(ws);
    assert.equal(code, 1001);
    assert.equal(await svc.exited, 0);
  });

  for (const [first, second, code] of [
    ['SIGTERM', 'SIGTERM', 143],
    ['SIGINT', 'SIGINT', 130],
    ['SIGTERM', 'SIGINT', 130],
  ] as const) {
    it(`a second signal while draining (${first}, then ${second}) exits at once with ${code} and says so`, async () => {
      // Ctrl-C twice, or a second `docker stop`: the operator does not want to wait out the drain.
      const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '30000' });
      const ws = await openWs(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}`);
      try {
        svc.child.kill(first);
        await waitFor(() => svc.lines.some((l) => l.includes('"event":"shutdown"')), 5000, 'the drain to start');
        // A person's second Ctrl-C: past the window in which a repeat is the first stop delivered twice.
        await new Promise((r) => setTimeout(r, REPEATED_SIGNAL_WINDOW_MS + 200));
        assert.equal(svc.child.exitCode, null, 'the first signal drains: the live relay holds the exit');
        const started = Date.now();
        svc.child.kill(second);
        const exited = await Promise.race([svc.exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 5000).unref())]);
        assert.equal(exited, code, `exit code (after ${Date.now() - started} ms)`);
        const forced = svc.lines.find((l) => l.includes('"event":"shutdown_forced"'));
        assert.ok(forced, svc.lines.join('\n'));
        assert.match(forced, new RegExp(`"signal":"${second}"`));
      } finally {
        ws.terminate();
        svc.child.kill('SIGKILL');
      }
    });
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`one stop delivered twice (${signal}, again a few ms later, as npm forwards a terminal's Ctrl-C) still drains`, async () => {
      // A terminal's Ctrl-C signals the whole foreground group: `npm run start:prod` (npm, and node when sh execs it)
      // gets it, and npm forwards its own copy to node. Neither is the operator's second Ctrl-C.
      const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '30000' });
      const ws = await openWs(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}`);
      try {
        // The copy follows as soon as the first is taken (what npm's forward does), not coalesced with it.
        const repeated = new Promise<void>((resolve) => {
          const onData = (chunk: Buffer): void => {
            if (!chunk.toString().includes('"event":"shutdown"')) return;
            svc.child.stdout!.off('data', onData);
            svc.child.kill(signal);
            resolve();
          };
          svc.child.stdout!.on('data', onData);
        });
        svc.child.kill(signal);
        await within(repeated, 5000, 'the drain to start');
        await waitFor(() => svc.lines.some((l) => l.includes('"event":"shutdown_signal_repeated"')) || svc.child.exitCode !== null, 5000, 'the copy to be taken');
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(svc.child.exitCode, null, `the drain goes on, the live relay holds the exit:\n${svc.lines.join('\n')}`);
        assert.ok(!svc.lines.some((l) => l.includes('shutdown_forced')), svc.lines.join('\n'));
        await relayCarriesThenExitIsClean(ws, svc);
      } finally {
        ws.terminate();
        svc.child.kill('SIGKILL');
      }
    });
  }

  it('exits at once on SIGTERM with nothing live, though a connection has not sent (all of) its first request head', async () => {
    // Default SHUTDOWN_TIMEOUT_MS (30 s): the process must not wait for its deadline to end these.
    const svc = await startServiceProcess({});
    const { connect } = await import('node:net');
    const silent = connect(svc.port, '127.0.0.1');
    const partial = connect(svc.port, '127.0.0.1', () => partial.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
    for (const s of [silent, partial]) s.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const took = await exitAfterSigterm(svc);
    for (const s of [silent, partial]) s.destroy();
    // Far below the 30 s deadline it must not wait for, with room for a loaded machine's stalls.
    assert.ok(took < 15_000, `exited after ${took} ms`);
    assert.ok(!svc.lines.some((l) => l.includes('"event":"shutdown_deadline"')), 'no shutdown deadline');
  });

  it('a SIGTERM during startup is not lost: the service comes up, shuts down and exits 0', async () => {
    // In the image node is PID 1, which drops a signal it has no handler for: a stop during startup would be
    // lost until the orchestrator's SIGKILL. Here (not PID 1) the same gap would kill the process by the signal.
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [MAIN_JS], {
      env: { PATH: process.env.PATH ?? '', PORT: '0', BIND_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    await new Promise<void>((resolve) => {
      const seen = (chunk: Buffer): void => {
        out += chunk.toString();
        // Booting (NestFactory's first line), not yet listening: the moment a stop can come during startup.
        if (out.includes('Starting Nest application')) {
          child.stdout!.off('data', seen);
          child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
          resolve();
        }
      };
      child.stdout!.on('data', seen);
    });
    // (On a starved machine the listening line may already be in the same read; the exit must be clean either way.)
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code, signal] = await exited;
    clearTimeout(timer);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, out);
    assert.match(out, /"event":"shutdown","signal":"SIGTERM"/);
  });

  for (const [entry, main] of [
    ['dist/main.js', MAIN_JS],
    ['the team extension example', join(REPO_ROOT, '.build/examples/team-extension/main.js')],
  ] as const) {
    it(`${entry} exits within SHUTDOWN_TIMEOUT_MS and a few seconds even when a client never answers its close frame`, async () => {
      const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '300' }, main);
      const { s } = await silentUpgrade(svc.port, `/relay?host=127.0.0.1&port=${echo.port}`);
      const took = await exitAfterSigterm(svc);
      s.destroy();
      assert.ok(took < 10_000, `exited after ${took} ms`);
      // Terminated after its close frame's moment, the relay still ends in the log before the exit.
      const ends = svc.lines.filter((l) => l.includes('"event":"relay_end"')).map((l) => JSON.parse(l) as { closeCode: number; endedBy: string });
      assert.deepEqual(ends.map((e) => [e.closeCode, e.endedBy]), [[1001, 'server']]);
    });
  }

  it('exits within SHUTDOWN_TIMEOUT_MS and a few seconds, the tunnel_ended logged, when a tunnel client never answers its close frame', async () => {
    const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '300', TUNNEL_TCP_ENABLED: 'false' });
    const { s } = await silentUpgrade(svc.port, '/tunnel');
    await waitFor(() => svc.lines.some((l) => l.includes('"event":"tunnel_registered"')));
    const took = await exitAfterSigterm(svc);
    s.destroy();
    assert.ok(!svc.lines.some((l) => l.includes('"event":"shutdown_deadline"')), 'exited before the shutdown deadline');
    assert.ok(took < 3_000, `exited after ${took} ms`);
    const ends = svc.lines.filter((l) => l.includes('"event":"tunnel_ended"')).map((l) => JSON.parse(l) as { closeCode: number });
    assert.equal(ends.length, 1, 'the tunnel ends in the log before the exit');
  });

  it('exits within SHUTDOWN_TIMEOUT_MS and a few seconds when a requester of a WebSocket through a tunnel never answers its close frame', async () => {
    const { WebSocketServer } = await import('ws');
    const { TunnelClient } = await import('../src/tunnel/client/tunnel-client.js');
    const origin = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => origin.once('listening', () => resolve()));
    origin.on('connection', (ws) => ws.on('error', () => undefined));
    const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '300', TUNNEL_TCP_ENABLED: 'false', TUNNEL_DOMAIN: 'tunnel.test' });
    const tunnel = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${svc.port}/tunnel`, to: `127.0.0.1:${(origin.address() as { port: number }).port}`, protocol: 2 });
    const { s, head } = await silentUpgrade(svc.port, '/', new URL(tunnel.tunnelUrl).host);
    assert.match(head.toString(), /^HTTP\/1\.1 101 /);
    const took = await exitAfterSigterm(svc);
    s.destroy();
    await tunnel.closed;
    await new Promise<void>((resolve) => origin.close(() => resolve()));
    assert.ok(!svc.lines.some((l) => l.includes('"event":"shutdown_deadline"')), 'exited before the shutdown deadline');
    assert.ok(took < 3_000, `exited after ${took} ms`);
  });

  it('logs one JSON event at relay start and end, with byte counts and no token', async () => {
    const svc = await startServiceProcess({});
    const ws = await openWs(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}&token=SECRET-TOKEN-VALUE`);
    const got = receiveBytes(ws, 5);
    ws.send(Buffer.from('hello'));
    await got;
    ws.close(1000);
    await closed(ws);
    await new Promise((r) => setTimeout(r, 200));
    svc.child.kill('SIGTERM');
    await svc.exited;
    const events = svc.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = events.filter((e) => e.event === 'relay_start');
    const end = events.filter((e) => e.event === 'relay_end');
    assert.equal(start.length, 1);
    assert.equal(end.length, 1);
    assert.equal(end[0].bytesUp, 5);
    assert.equal(end[0].bytesDown, 5);
    assert.equal(end[0].target, `127.0.0.1:${echo.port}`);
    assert.equal(end[0].clientIp, '127.0.0.1');
    assert.equal(end[0].user, 'anonymous');
    assert.equal(typeof end[0].durationMs, 'number');
    assert.ok(!svc.lines.join('\n').includes('SECRET-TOKEN-VALUE'), 'token never logged');
  });

  const badConfigs: [Record<string, string>, RegExp][] = [
    [{ PORT: 'eighty' }, /^invalid configuration: PORT is "eighty", not a whole number \(accepted: /],
    [{ MAX_CONNS_PER_IP: '0' }, /^invalid configuration: MAX_CONNS_PER_IP is 0, out of range/],
    [{ CLERK_JWKS_URL: 'http://jwks.example.com/keys' }, /^invalid configuration: CLERK_JWKS_URL uses http:/],
    [{ BLOCKED_TARGETS: '10/8' }, /^invalid configuration: BLOCKED_TARGETS has "10\/8"/],
    [{ TRUSTED_PROXIES: 'proxy.local' }, /^invalid configuration: TRUSTED_PROXIES/],
    [{ TUNNEL_V1_BODY_BUFFER_BYTES: '1048576' }, /^invalid configuration: TUNNEL_V1_BODY_BUFFER_BYTES \(1048576\) cannot hold one of the largest v1 request bodies \(10485760/],
    [{ ALLOWED_TARGETS: '0.0.0.0/0:99999' }, /^invalid configuration: ALLOWED_TARGETS/],
    [{ LOG_LEVEL: 'loud' }, /^invalid configuration: LOG_LEVEL is "loud"/],
    [{ ALLOWED_ORIGINS: 'app.example.com' }, /^invalid configuration: ALLOWED_ORIGINS has "app\.example\.com", not an origin/],
    [{ ALLOWED_ORIGINS: 'https://ok.example.com,https://app.example.com/login' }, /^invalid configuration: ALLOWED_ORIGINS has "https:\/\/app\.example\.com\/login"/],
    [{ TUNNEL_PORT_MIN: '2000', TUNNEL_PORT_MAX: '1000' }, /^invalid configuration: TUNNEL_PORT_MAX/],
    [{ BLOCKED_TARGETS: ',' }, /^invalid configuration: BLOCKED_TARGETS is ",", a list without entries/],
    [{ BIND_HOST: 'localhost' }, /^invalid configuration: BIND_HOST is "localhost", not an IP address/],
    [{ BLOCKED_TARGETS: 'fe80::1%lo' }, /^invalid configuration: BLOCKED_TARGETS has "fe80::1%lo"/],
    [{ CLERK_JWKS_URL: 'https://user:TOPSECRET@clerk.example.com/jwks' }, /^invalid configuration: CLERK_JWKS_URL has a user or password in it \(accepted: [^)]*\)$/],
  ];
  it('warns at boot of a variable that looks like a misspelt one, naming it and not its value', async () => {
    // The built-in blocklist: the test one leaves loopback open, which is warned about too.
    const svc = await startServiceProcess({ MAX_CONN_PER_IP: 'VALUE-NOT-LOGGED', BLOCKED_TARGETS: '' });
    try {
      const warnings = svc.lines.filter((l) => l.includes('"event":"config_warning"'));
      assert.equal(warnings.length, 1, svc.lines.join('\n'));
      assert.match(warnings[0]!, /MAX_CONN_PER_IP is not a wsproxy variable and is ignored: did you mean MAX_CONNS_PER_IP\?/);
      assert.ok(!svc.lines.join('\n').includes('VALUE-NOT-LOGGED'));
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  });

  it('out of file descriptors, refuses a relay 503 proxy out of resources (never a 502 blaming the target), warns once, and recovers', async () => {
    const svc = await startServiceProcess({ MAX_CONNS_PER_IP: '100000' }, MAIN_JS, { openFileLimit: 300 });
    const url = `ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}`;
    const held: WebSocket[] = [];
    const idle: import('node:net').Socket[] = [];
    const refusals: string[] = [];
    try {
      // Relays take two descriptors each (client, target). When the last one goes to accepting a
      // client, its dial fails with EMFILE; when none is left, the connection is reset instead, and
      // giving one relay back for an idle connection moves the count by one.
      for (let attempt = 0; attempt < 400 && !refusals.some((r) => r.startsWith('503')); attempt++) {
        try {
          held.push(await openWs(url, { handshakeTimeout: 5000 }));
        } catch (err) {
          const e = err as { status?: number; body?: string };
          if (e.status === undefined) {
            held.shift()?.close(1000);
            await new Promise((r) => setTimeout(r, 200));
            const { connect } = await import('node:net');
            const s = connect(svc.port, '127.0.0.1');
            s.on('error', () => undefined);
            idle.push(s);
            await new Promise((r) => setTimeout(r, 100));
          } else {
            refusals.push(`${e.status} ${e.body}`);
          }
        }
      }
      assert.ok(refusals.includes('503 proxy out of resources'), `refusals: ${JSON.stringify(refusals)}`);
      assert.deepEqual(refusals.filter((r) => !r.startsWith('503')), [], 'nothing blamed on the target');
      // The log line travels through the service's stdout: it may come after the 503 did.
      await waitFor(() => svc.lines.some((l) => l.includes('failed with EMFILE')), 5000, 'the EMFILE warning');
      const warnings = svc.lines.filter((l) => l.includes('failed with EMFILE'));
      assert.equal(warnings.length, 1, svc.lines.join('\n'));
      assert.match(warnings[0]!, /connecting to a target failed with EMFILE: the proxy is out of resources \(raise the open-file limit\)/);
      for (const ws of held.splice(0)) ws.close(1000);
      for (const s of idle.splice(0)) s.destroy();
      await new Promise((r) => setTimeout(r, 500));
      const ws = await openWs(url);
      const got = receiveBytes(ws, 4);
      ws.send(Buffer.from('back'));
      assert.equal((await got).toString(), 'back', 'relays work again once descriptors are free');
      ws.close(1000);
      const metrics = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
      const counted = Number(/^wsproxy_admission_refusals_total\{reason="resources"\} (\d+)$/m.exec(metrics)?.[1]);
      // At least each 503 the client read (one whose answer could not be written counts too).
      assert.ok(counted >= refusals.length, `${counted} counted under resources, ${refusals.length} refusals read`);
    } finally {
      for (const ws of held) ws.terminate();
      for (const s of idle) s.destroy();
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  });

  it('closes 1009 on a message over MAX_MESSAGE_BYTES that the client is still sending: the close frame reaches it, not a reset', async () => {
    const svc = await startServiceProcess({});
    try {
      for (const size of [5_000_000, 8 * 1024 * 1024]) {
        const ws = await openWs(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}`);
        ws.send(Buffer.alloc(size));
        assert.equal((await closed(ws)).code, 1009, `${size} bytes`);
      }
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  });

  it('names BIND_HOST and PORT when it cannot listen there, and exits 1 without a stack trace', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const busy = (taken.address() as import('node:net').AddressInfo).port;
    try {
      const r = spawnSync(process.execPath, [MAIN_JS], { env: { PATH: process.env.PATH ?? '', PORT: String(busy), BIND_HOST: '127.0.0.1' }, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`^wsproxy failed to start: cannot listen on BIND_HOST=127\\.0\\.0\\.1 PORT=${busy}: listen EADDRINUSE`, 'm'));
      assert.ok(!(r.stderr + r.stdout).includes('    at '), 'no stack trace');
    } finally {
      taken.close();
    }
  });

  it('names BIND_HOST and METRICS_PORT when the metrics listener cannot listen there, and exits 1 without a stack trace', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const busy = (taken.address() as import('node:net').AddressInfo).port;
    try {
      const r = spawnSync(process.execPath, [MAIN_JS], { env: { PATH: process.env.PATH ?? '', PORT: '0', METRICS_PORT: String(busy), BIND_HOST: '127.0.0.1' }, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`^wsproxy failed to start: cannot listen on BIND_HOST=127\\.0\\.0\\.1 METRICS_PORT=${busy}: listen EADDRINUSE`, 'm'));
      assert.ok(!(r.stderr + r.stdout).includes('    at '), 'no stack trace');
    } finally {
      taken.close();
    }
  });

  for (const [env, pattern] of badConfigs) {
    it(`refuses to start on ${Object.keys(env).join(', ')} with one line and exit 1`, () => {
      const r = spawnSync(process.execPath, [MAIN_JS], { env: { PATH: process.env.PATH ?? '', PORT: '0', ...env }, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 1);
      const out = (r.stderr + r.stdout).trim();
      assert.equal(out.split('\n').length, 1, `one line, got:\n${out}`);
      assert.match(out, pattern);
      assert.ok(!out.includes('    at '), 'no stack trace');
    });
  }
});
