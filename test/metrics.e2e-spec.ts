import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WsproxyEvents } from '../src/common/events.js';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { MetricsListener } from '../src/metrics/metrics-listener.service.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, randomPayload, startTarget, type TestTarget } from './support/targets.js';
import { closed, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { JwksServer, makeKey, mintToken, unreachableJwksUrl } from './support/jwks.js';
import { createServer } from 'node:net';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { ResumeService } from '../src/resume/resume.service.js';
import { RawResumeClient } from './support/resume-client.js';
import { TUNNEL_DOMAIN, httpTo, startHttpService, tunnelEnv, type HttpService } from './support/tunnel.js';
import { UPGRADE_HEADERS, rawExchange, rawRequest } from './support/raw-http.js';
import { LISTENER_REFUSAL_LABELS } from '../src/upgrade/listener-refusals.js';

/** One scrape: `name{labels}` → value, plus the raw text. */
interface Scrape {
  readonly text: string;
  value(series: string): number;
}

function parseScrape(text: string): Scrape {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return {
    text,
    value(series: string): number {
      const v = values.get(series);
      if (v === undefined) throw new Error(`series ${series} not exposed`);
      return v;
    },
  };
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseScrape(await res.text());
}

/** Scrapes until `check` holds (state that settles asynchronously, such as a relay's end). */
async function scrapeUntil(url: string, check: (s: Scrape) => boolean, what: string): Promise<Scrape> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = await scrape(url);
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const REFUSAL_REASONS = ['auth', 'origin', 'limit', 'blocked', 'dial', 'bad_request', 'draining'];

const WSPROXY_SERIES = [
  'wsproxy_relays_active',
  'wsproxy_relays_opened_total',
  'wsproxy_relays_ended_total',
  'wsproxy_relay_bytes_total{direction="up"}',
  'wsproxy_relay_bytes_total{direction="down"}',
  'wsproxy_tunnels_active',
  'wsproxy_tunnels_opened_total',
  'wsproxy_tunnels_ended_total',
  'wsproxy_connection_slots_in_use',
  ...REFUSAL_REASONS.map((r) => `wsproxy_admission_refusals_total{reason="${r}"}`),
  ...LISTENER_REFUSAL_LABELS.map((r) => `wsproxy_http_refusals_total{reason="${r}"}`),
  'wsproxy_dial_duration_seconds_count{result="ok"}',
  'wsproxy_dial_duration_seconds_count{result="error"}',
  'wsproxy_dial_duration_seconds_bucket{le="0.1",result="ok"}',
  'wsproxy_jwks_fetches_total',
  'wsproxy_jwks_fetch_failures_total',
  ...['1xx', '2xx', '3xx', '4xx', '5xx'].map((c) => `wsproxy_tunnel_http_requests_total{status_class="${c}"}`),
  'wsproxy_tunnel_tcp_connections_total',
  ...['detached', 'reattached', 'expired'].map((e) => `wsproxy_resume_sessions_total{event="${e}"}`),
  'wsproxy_cluster_heartbeats_total',
  'wsproxy_cluster_heartbeat_failures_total',
  'wsproxy_cluster_forwarded_http_requests_total',
  'wsproxy_cluster_forwarded_tcp_connections_total',
];

/** Node's default process metrics (prom-client's `collectDefaultMetrics`). */
const PROCESS_SERIES = [
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'process_start_time_seconds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
];

describe('GET /metrics', () => {
  let app: TestApp;
  let target: TestTarget;
  let url: string;

  before(async () => {
    target = await echoTarget();
    app = await startApp();
    url = `${app.baseUrl}/metrics`;
  });
  after(async () => {
    await app.close();
    await target.close();
  });

  test('exposes every named series at zero, plus the default process metrics', async () => {
    const s = await scrape(url);
    for (const series of WSPROXY_SERIES) assert.equal(s.value(series), 0, series);
    for (const series of PROCESS_SERIES) assert.ok(s.value(series) >= 0, series);
    assert.match(s.text, /^# TYPE wsproxy_relay_bytes_total counter$/m);
    assert.match(s.text, /^# TYPE wsproxy_dial_duration_seconds histogram$/m);
    assert.match(s.text, /^# TYPE wsproxy_relays_active gauge$/m);
  });

  test('counters move as a relay opens, carries bytes both ways and ends', async () => {
    const before = await scrape(url);
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
    const payload = randomPayload(100_000);
    const echoed = receiveBytes(ws, payload.length);
    ws.send(payload);
    assert.equal((await echoed).length, payload.length);

    // Live relay: bytes come from its socket counters at scrape time.
    const live = await scrape(url);
    assert.equal(live.value('wsproxy_relays_active'), 1);
    assert.equal(live.value('wsproxy_relays_opened_total'), before.value('wsproxy_relays_opened_total') + 1);
    assert.equal(live.value('wsproxy_relays_ended_total'), before.value('wsproxy_relays_ended_total'));
    assert.equal(live.value('wsproxy_relay_bytes_total{direction="up"}'), before.value('wsproxy_relay_bytes_total{direction="up"}') + 100_000);
    assert.equal(live.value('wsproxy_relay_bytes_total{direction="down"}'), before.value('wsproxy_relay_bytes_total{direction="down"}') + 100_000);
    assert.equal(live.value('wsproxy_dial_duration_seconds_count{result="ok"}'), before.value('wsproxy_dial_duration_seconds_count{result="ok"}') + 1);

    const wsClosed = closed(ws);
    ws.close(1000);
    await wsClosed;
    const ended = await scrapeUntil(url, (s) => s.value('wsproxy_relays_active') === 0, 'the relay to end');
    assert.equal(ended.value('wsproxy_relays_ended_total'), before.value('wsproxy_relays_ended_total') + 1);
    // The ended relay's bytes moved from the live sum into the ended total: nothing lost, nothing counted twice.
    assert.equal(ended.value('wsproxy_relay_bytes_total{direction="up"}'), live.value('wsproxy_relay_bytes_total{direction="up"}'));
    assert.equal(ended.value('wsproxy_relay_bytes_total{direction="down"}'), live.value('wsproxy_relay_bytes_total{direction="down"}'));
  });

  test('each app instance counts on its own registry', async () => {
    const other = await startApp();
    try {
      const mine = await scrape(url);
      const theirs = await scrape(`${other.baseUrl}/metrics`);
      assert.ok(mine.value('wsproxy_relays_opened_total') >= 1);
      assert.equal(theirs.value('wsproxy_relays_opened_total'), 0);
    } finally {
      await other.close();
    }
  });

  test('tunnel, resume, JWKS and cluster series follow their lifecycle events', async () => {
    // The event contract (src/common/events.ts), driven directly: raw TCP tunnel
    // connections, resumption and JWKS fetches have no real emitter in every
    // build; the real tunnel path is covered below.
    const events = app.app.get(WsproxyEvents);
    const before = await scrape(url);
    const tunnel = { subdomain: 'abc', user: 'u', clientIp: '127.0.0.1', rawPort: 0 };
    events.emit('tunnel.opened', tunnel);
    events.emit('tunnel.opened', { ...tunnel, subdomain: 'def' });
    events.emit('tunnel.http', { status: 200, forwarded: false });
    events.emit('tunnel.http', { status: 502, forwarded: false });
    events.emit('tunnel.tcp', { forwarded: false });
    events.emit('tunnel.closed', { ...tunnel, httpRequests: 2, tcpConnections: 1, durationMs: 5, closeCode: 1000, closeReason: '' });
    events.emit('resume.detached', { id: 'r1' });
    events.emit('resume.reattached', { id: 'r1' });
    events.emit('resume.expired', { id: 'r2' });
    events.emit('jwks.fetch', { ok: true });
    events.emit('jwks.fetch', { ok: false });
    events.emit('tunnel.http', { status: 204, forwarded: true });
    events.emit('tunnel.tcp', { forwarded: true });
    events.emit('cluster.redis', { op: 'admit', seconds: 0.002, ok: true });
    events.emit('cluster.redis', { op: 'admit', seconds: 0.5, ok: false });
    events.emit('cluster.heartbeat', { ok: true });
    events.emit('cluster.heartbeat', { ok: false });
    const s = await scrape(url);
    const delta = (series: string): number => s.value(series) - before.value(series);
    assert.equal(s.value('wsproxy_tunnels_active'), 1);
    assert.equal(delta('wsproxy_tunnels_opened_total'), 2);
    assert.equal(delta('wsproxy_tunnels_ended_total'), 1);
    assert.equal(delta('wsproxy_tunnel_http_requests_total{status_class="2xx"}'), 2);
    assert.equal(delta('wsproxy_tunnel_http_requests_total{status_class="5xx"}'), 1);
    assert.equal(delta('wsproxy_tunnel_tcp_connections_total'), 2);
    assert.equal(delta('wsproxy_cluster_forwarded_http_requests_total'), 1);
    assert.equal(delta('wsproxy_cluster_forwarded_tcp_connections_total'), 1);
    assert.equal(s.value('wsproxy_cluster_redis_duration_seconds_count{op="admit",result="ok"}'), 1);
    assert.equal(s.value('wsproxy_cluster_redis_duration_seconds_bucket{le="0.0025",op="admit",result="ok"}'), 1);
    assert.equal(s.value('wsproxy_cluster_redis_duration_seconds_count{op="admit",result="error"}'), 1);
    assert.equal(delta('wsproxy_cluster_heartbeats_total'), 2);
    assert.equal(delta('wsproxy_cluster_heartbeat_failures_total'), 1);
    assert.equal(delta('wsproxy_resume_sessions_total{event="detached"}'), 1);
    assert.equal(delta('wsproxy_resume_sessions_total{event="reattached"}'), 1);
    assert.equal(delta('wsproxy_resume_sessions_total{event="expired"}'), 1);
    assert.equal(delta('wsproxy_jwks_fetches_total'), 2);
    assert.equal(delta('wsproxy_jwks_fetch_failures_total'), 1);
    events.emit('tunnel.closed', { ...tunnel, subdomain: 'def', httpRequests: 0, tcpConnections: 0, durationMs: 5, closeCode: 1000, closeReason: '' });
  });
});

describe('MAX_CONNECTIONS slots', () => {
  test('the slots in use follow the relays (and a tunnel), against the cap, which refuses the next at capacity', async () => {
    const echo = await echoTarget();
    const app = await startApp(await tunnelEnv({ MAX_CONNECTIONS: '3' }));
    const url = `${app.baseUrl}/metrics`;
    try {
      const idle = await scrape(url);
      assert.equal(idle.value('wsproxy_connection_slots_in_use'), 0);
      assert.equal(idle.value('wsproxy_connection_slots_limit'), 3);
      assert.match(idle.text, /^# TYPE wsproxy_connection_slots_in_use gauge$/m);
      assert.match(idle.text, /^# TYPE wsproxy_connection_slots_limit gauge$/m);
      const first = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const second = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      assert.equal((await scrape(url)).value('wsproxy_connection_slots_in_use'), 2);
      const tunnel = await openWs(`${app.wsUrl}/tunnel`);
      const full = await scrape(url);
      assert.equal(full.value('wsproxy_connection_slots_in_use'), 3, 'a tunnel takes a slot too');
      assert.equal(full.value('wsproxy_connection_slots_limit'), 3);
      const refused = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      assert.equal(refused.status, 503);
      assert.equal((await scrape(url)).value('wsproxy_connection_slots_in_use'), 3, 'a refusal at capacity takes none');
      first.close(1000);
      await closed(first);
      await scrapeUntil(url, (m) => m.value('wsproxy_connection_slots_in_use') === 2, 'the closed relay to give its slot back');
      for (const ws of [second, tunnel]) {
        ws.close(1000);
        await closed(ws);
      }
      await scrapeUntil(url, (m) => m.value('wsproxy_connection_slots_in_use') === 0, 'every slot given back');
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('tunnel series from a real tunnel', () => {
  let app: TestApp;
  let svc: HttpService;

  before(async () => {
    app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    svc = await startHttpService((req, _body, res) => {
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  after(async () => {
    await app.close();
    await svc.close();
  });

  test('a tunnel opens, answers HTTP by status class, and ends', async () => {
    const url = `${app.baseUrl}/metrics`;
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
    const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    const open = await scrape(url);
    assert.equal(open.value('wsproxy_tunnels_active'), 1);
    assert.equal(open.value('wsproxy_tunnels_opened_total'), 1);

    assert.equal((await httpTo(app.port, host, { path: '/' })).status, 200);
    assert.equal((await httpTo(app.port, host, { path: '/missing' })).status, 404);
    const served = await scrapeUntil(
      url,
      (s) => s.value('wsproxy_tunnel_http_requests_total{status_class="4xx"}') === 1,
      'the 404 to be counted',
    );
    assert.equal(served.value('wsproxy_tunnel_http_requests_total{status_class="2xx"}'), 1);

    await client.close();
    const ended = await scrapeUntil(url, (s) => s.value('wsproxy_tunnels_active') === 0, 'the tunnel to end');
    assert.equal(ended.value('wsproxy_tunnels_ended_total'), 1);
  });

  test('a WebSocket upgrade the proxy refuses for a tunnel host is counted by its status, as a plain request is', async () => {
    const url = `${app.baseUrl}/metrics`;
    const before = await scrape(url);
    const delta = (s: Scrape, c: string): number =>
      s.value(`wsproxy_tunnel_http_requests_total{status_class="${c}"}`) - before.value(`wsproxy_tunnel_http_requests_total{status_class="${c}"}`);
    const upgrade = (host: string): Promise<string> => rawExchange(app.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n${UPGRADE_HEADERS}\r\n`);
    // No tunnel behind the subdomain: 404, as a plain request gets (and counts).
    assert.match(await upgrade(`0123456789abcdef.${TUNNEL_DOMAIN}`), /^HTTP\/1\.1 404 /);
    await scrapeUntil(url, (s) => delta(s, '4xx') === 1, 'the 404 to be counted');
    // A protocol v1 tunnel cannot carry WebSockets: 501.
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
    try {
      assert.match(await upgrade(`${client.subdomain}.${TUNNEL_DOMAIN}`), /^HTTP\/1\.1 501 /);
      const after = await scrapeUntil(url, (s) => delta(s, '5xx') === 1, 'the 501 to be counted');
      assert.equal(delta(after, '4xx'), 1);
    } finally {
      await client.close();
    }
  });
});

describe('admission refusals by reason', () => {
  let app: TestApp;
  let target: TestTarget;
  let url: string;

  before(async () => {
    target = await echoTarget();
    app = await startApp({
      ALLOWED_ORIGINS: 'https://ok.example',
      MAX_CONNS_PER_IP: '1',
      // Loopback only: 127.0.0.2 is "blocked", 127.0.0.1 (the echo target) is not.
      BLOCKED_TARGETS: '127.0.0.2/32',
    });
    url = `${app.baseUrl}/metrics`;
  });
  after(async () => {
    await app.close();
    await target.close();
  });

  test('every refusal is counted under its reason, and dial failures in the histogram', async () => {
    const before = await scrape(url);
    const relay = (q: string): string => `${app.wsUrl}/relay?${q}`;
    const ok = `host=127.0.0.1&port=${target.port}`;

    assert.equal((await expectRefusal(relay('port=22'))).status, 400);
    assert.equal((await expectRefusal(relay(ok), { headers: { Origin: 'https://evil.example' } })).status, 403);
    assert.equal((await expectRefusal(relay(`host=127.0.0.2&port=${target.port}`))).status, 403);
    assert.equal((await expectRefusal(relay(`host=127.0.0.1&port=${await closedPort()}`))).status, 502);
    // An upgrade to a path no gateway serves.
    const unknown = await expectRefusal(`${app.wsUrl}/nope?${ok}`);
    assert.deepEqual([unknown.status, unknown.body], [404, 'not found']);

    const live = await openWs(relay(ok));
    assert.equal((await expectRefusal(relay(ok))).status, 429);
    const liveClosed = closed(live);
    live.close();
    await liveClosed;

    app.app.get(DrainService).startDraining();
    assert.equal((await expectRefusal(relay(ok))).status, 503);

    const s = await scrape(url);
    const delta = (series: string): number => s.value(series) - before.value(series);
    for (const reason of ['bad_request', 'origin', 'blocked', 'dial', 'limit', 'draining', 'not_found']) {
      assert.equal(delta(`wsproxy_admission_refusals_total{reason="${reason}"}`), 1, reason);
    }
    assert.equal(delta('wsproxy_admission_refusals_total{reason="auth"}'), 0);
    assert.equal(delta('wsproxy_dial_duration_seconds_count{result="error"}'), 1);
    assert.equal(delta('wsproxy_dial_duration_seconds_count{result="ok"}'), 1);
  });
});

describe('refusals at the listener, before any route', () => {
  let app: TestApp;
  let url: string;

  before(async () => {
    app = await startApp({ HANDSHAKE_TIMEOUT_MS: '1000' });
    url = `${app.baseUrl}/metrics`;
  });
  after(() => app.close());

  test('each is counted under its reason, plain requests and upgrades alike; a reset connection is not a refusal', async () => {
    const before = await scrape(url);
    const port = app.port;
    // malformed_request: Node's parser refuses the request line.
    assert.match(await rawExchange(port, 'GET /\x01bad HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
    // head_too_large, twice: a plain request and an upgrade.
    const flood = `X-Flood: ${'a'.repeat(32 * 1024)}\r\n`;
    assert.match(await rawExchange(port, `GET /health HTTP/1.1\r\nHost: x\r\n${flood}\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: x\r\n${UPGRADE_HEADERS}${flood}\r\n`), /^HTTP\/1\.1 431 /);
    // target_too_long: a request target past MAX_HEADER_BYTES on its own.
    assert.match(await rawExchange(port, `GET /${'a'.repeat(32 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`), /^HTTP\/1\.1 414 [^]*request target too long/);
    // head_timeout: a head that never ends.
    assert.match(await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: x\r\n'), /^HTTP\/1\.1 408 /);
    // connect
    assert.equal((await rawRequest(port, 'CONNECT 127.0.0.1:22 HTTP/1.1', { host: '127.0.0.1:22' })).status, 405);
    // repeated_host: a plain request and an upgrade.
    assert.equal((await rawRequest(port, 'GET /health HTTP/1.1', { headers: 'Host: other.example\r\n' })).status, 400);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: x\r\nHost: y\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*repeated Host header/);
    // missing_host: an HTTP/1.1 plain request and an upgrade.
    assert.match(await rawExchange(port, 'GET /health HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 [^]*missing Host header/);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*missing Host header/);
    // malformed_target: a plain request and an upgrade.
    assert.equal((await rawRequest(port, 'GET http://[::1/health HTTP/1.1')).status, 400);
    assert.match(await rawExchange(port, `GET http://[::1/relay HTTP/1.1\r\nHost: x\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*malformed request target/);
    // unsupported_version, too_many_headers, invalid_host: a plain request and an upgrade each.
    assert.match(await rawExchange(port, 'GET /health HTTP/2.0\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 505 [^]*HTTP version not supported/);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/2.0\r\nHost: x\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 505 /);
    const fields = Array.from({ length: 201 }, (_, i) => `x-${i}: 1\r\n`).join('');
    assert.match(await rawExchange(port, `GET /health HTTP/1.1\r\nHost: x\r\n${fields}\r\n`), /^HTTP\/1\.1 431 [^]*too many header fields/);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: x\r\n${UPGRADE_HEADERS}${fields}\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: a b\r\n\r\n'), /^HTTP\/1\.1 400 [^]*invalid Host header/);
    // Between brackets only an IPv6 address or IPvFuture (RFC 3986 §3.2.2): a bracketed name is no host.
    assert.match(await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: [0123456789abcdef.tunnel.test]\r\n\r\n'), /^HTTP\/1\.1 400 [^]*invalid Host header/);
    assert.match(await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: [::1]:80\r\n\r\n'), /^HTTP\/1\.1 200 /);
    assert.match(await rawExchange(port, `GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: u@x\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*invalid Host header/);
    // A chunk extension past Node's bound. No route reads a body, so the 404 has gone out before the parser
    // reaches it; the connection is dropped then, with no second head, and no 413 is counted as sent.
    const chunked = `POST /nothing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(40 * 1024)}\r\n`;
    const answered = await rawExchange(port, chunked);
    assert.match(answered, /^HTTP\/1\.1 404 /);
    assert.equal(answered.match(/HTTP\/1\.1 /g)?.length, 1);
    // A client that resets half-way through its head: no reply and no count.
    assert.equal(await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: x\r\n', (s) => setTimeout(() => s.resetAndDestroy(), 50)), '');

    const s = await scrape(url);
    const delta = (reason: string): number => s.value(`wsproxy_http_refusals_total{reason="${reason}"}`) - before.value(`wsproxy_http_refusals_total{reason="${reason}"}`);
    const expected: Record<string, number> = {
      malformed_request: 1,
      head_too_large: 2,
      target_too_long: 1,
      head_timeout: 1,
      connect: 1,
      unsupported_version: 2,
      too_many_headers: 2,
      repeated_host: 2,
      missing_host: 2,
      invalid_host: 3,
      malformed_target: 2,
      chunk_extensions_too_large: 0,
    };
    for (const reason of LISTENER_REFUSAL_LABELS) assert.equal(delta(reason), expected[reason], reason);
  });
});

describe('authentication refusals', () => {
  test('a token refused 401 counts as reason "auth", as an unreachable JWKS endpoint (503) does', async () => {
    const app = await startApp({ CLERK_JWKS_URL: await unreachableJwksUrl(), JWKS_REFETCH_COOLDOWN_S: '0' });
    try {
      // A well-formed token, so the refusal comes from the key lookup, not the token's shape.
      const token = await mintToken(await makeKey('k-unreachable'), { sub: 'user_metrics' });
      const refusal = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=22&token=${token}`);
      assert.equal(refusal.status, 503);
      assert.match(refusal.body, /authentication unavailable/);
      const missing = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=22`);
      assert.deepEqual(missing, { status: 401, body: 'token missing' });
      const s = await scrape(`${app.baseUrl}/metrics`);
      assert.equal(s.value('wsproxy_admission_refusals_total{reason="auth"}'), 2);
      // The JWKS service's own fetches, failed ones among them (the series stayed at 0 when it got no event emitter).
      assert.ok(s.value('wsproxy_jwks_fetches_total') >= 1);
      assert.equal(s.value('wsproxy_jwks_fetch_failures_total'), s.value('wsproxy_jwks_fetches_total'));
    } finally {
      await app.close();
    }
  });

  test('a JWKS fetch that succeeds is counted, and not as a failure', async () => {
    const key = await makeKey('k-metrics');
    const jwks = await JwksServer.start([key]);
    const target = await echoTarget();
    const app = await startApp({ CLERK_JWKS_URL: jwks.url });
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&token=${await mintToken(key, { sub: 'user_metrics' })}`);
      ws.close(1000);
      await closed(ws);
      const s = await scrape(`${app.baseUrl}/metrics`);
      assert.equal(s.value('wsproxy_jwks_fetches_total'), jwks.requests);
      assert.ok(jwks.requests >= 1);
      assert.equal(s.value('wsproxy_jwks_fetch_failures_total'), 0);
    } finally {
      await app.close();
      await target.close();
      await jwks.stop();
    }
  });
});

describe('METRICS_PORT', () => {
  test('serves /metrics only on its own listener, and closes it with the app', async () => {
    const app = await startApp({ METRICS_PORT: '0' });
    let port: number | null = null;
    try {
      port = app.app.get(MetricsListener).port;
      assert.ok(port !== null && port > 0 && port !== app.port);
      const main = await fetch(`${app.baseUrl}/metrics`);
      assert.equal(main.status, 404);
      await main.arrayBuffer();
      const s = await scrape(`http://127.0.0.1:${port}/metrics`);
      assert.equal(s.value('wsproxy_relays_active'), 0);
      const other = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(other.status, 404);
      await other.arrayBuffer();
      // GET and HEAD only, as on the main listener (a GET route): another method is no scrape.
      const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST', body: 'x' });
      assert.equal(post.status, 404);
      assert.equal(await post.text(), 'not found\n');
      const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      const health = await fetch(`${app.baseUrl}/health`);
      assert.equal(health.status, 200);
      await health.arrayBuffer();
    } finally {
      await app.close();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
  });

  test('refuses a WebSocket upgrade 404, as the main listener does for every HTTP-only route, not with a scrape', async () => {
    const app = await startApp({ METRICS_PORT: '0' });
    try {
      const port = app.app.get(MetricsListener).port!;
      for (const [listener, path] of [
        [app.port, '/health'],
        [app.port, '/metrics'],
        [port, '/metrics'],
        [port, '/health'],
      ] as const) {
        const answer = await rawExchange(listener, `GET ${path} HTTP/1.1\r\nHost: x\r\n${UPGRADE_HEADERS}\r\n`);
        assert.match(answer, /^HTTP\/1\.1 404 /, `${listener === port ? 'METRICS_PORT' : 'PORT'} ${path}: ${answer.slice(0, 60)}`);
        assert.match(answer, /not found\n/);
        assert.doesNotMatch(answer, /wsproxy_relays_active/);
      }
      // Another protocol than WebSocket (curl --http2 offers h2c) is ignored: the scrape is served (RFC 9110 §7.8).
      const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
      const scraped = await rawExchange(port, `GET /metrics HTTP/1.1\r\nHost: x\r\n${h2c}Connection: close\r\n\r\n`);
      assert.match(scraped, /^HTTP\/1\.1 200 [^]*wsproxy_relays_active/);
    } finally {
      await app.close();
    }
  });

  test('keeps counting through a drain: refusals while draining and the relays the drain waited for', async () => {
    const echo = await echoTarget();
    const app = await startApp({ METRICS_PORT: '0', SHUTDOWN_TIMEOUT_MS: '20000' });
    try {
      const port = app.app.get(MetricsListener).port;
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const other = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const payload = randomPayload(1000);
      const echoed = receiveBytes(ws, payload.length);
      ws.send(payload);
      await echoed;
      const closing = app.close();
      await new Promise((r) => setTimeout(r, 200));
      const refused = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      assert.equal(refused.status, 503);
      const during = await scrape(`http://127.0.0.1:${port}/metrics`);
      assert.equal(during.value('wsproxy_admission_refusals_total{reason="draining"}'), 1);
      // One of the relays the drain waits for ends: it is counted, bytes and all, while the other keeps the drain going.
      ws.close(1000);
      await closed(ws);
      const url = `http://127.0.0.1:${port}/metrics`;
      const after = await scrapeUntil(url, (m) => m.value('wsproxy_relays_ended_total') === 1, 'the ended relay counted during the drain');
      assert.equal(after.value('wsproxy_relay_bytes_total{direction="up"}'), payload.length);
      assert.equal(after.value('wsproxy_relay_bytes_total{direction="down"}'), payload.length);
      assert.equal(after.value('wsproxy_relays_active'), 1);
      other.close(1000);
      await closed(other);
      await closing;
    } finally {
      await echo.close();
    }
  });

  test('holds its listener to MAX_HEADER_BYTES (431) and HANDSHAKE_TIMEOUT_MS (408), as the main one', async () => {
    const app = await startApp({ METRICS_PORT: '0', MAX_HEADER_BYTES: '2048', HANDSHAKE_TIMEOUT_MS: '1000' });
    try {
      const port = app.app.get(MetricsListener).port!;
      const big = await rawRequest(port, 'GET /metrics HTTP/1.1', { headers: `X-Pad: ${'a'.repeat(4000)}\r\n` });
      assert.equal(big.status, 431);
      const startedAt = Date.now();
      const { connect } = await import('node:net');
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString('latin1')));
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      const trickle = setInterval(() => s.writable && s.write('X-A: b\r\n'), 200);
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no 408 within 4 s (got ${JSON.stringify(text.slice(0, 40))})`)), 4000);
          s.once('close', () => {
            clearTimeout(t);
            resolve();
          });
        });
      } finally {
        clearInterval(trickle);
        s.destroy();
      }
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - startedAt < 4000);
    } finally {
      await app.close();
    }
  });

  test('without METRICS_PORT there is no second listener', async () => {
    const app = await startApp();
    try {
      assert.equal(app.app.get(MetricsListener).port, null);
    } finally {
      await app.close();
    }
  });
});

describe('metrics of a resumable relay the server is closing', () => {
  test('its bytes and its place in relays_active stay counted until its end is reported', async () => {
    const echo = await echoTarget();
    const app = await startApp({ RESUME_WINDOW_S: '30', MAX_CONNECTION_S: '1' });
    try {
      const url = `${app.baseUrl}/metrics`;
      const payload = randomPayload(100_000);
      const { client } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1`);
      client.ws.send(payload);
      await scrapeUntil(url, (s) => s.value('wsproxy_relay_bytes_total{direction="up"}') === payload.length, 'the upload counted');
      // The client stops reading, so it never answers the server's close (4408 at the maximum age).
      (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const sessions = app.app.get(ResumeService);
      const deadline = Date.now() + 5000;
      while (sessions.liveSessions()[0]?.state !== 'ended') {
        assert.ok(Date.now() < deadline, 'the server closes the session at its maximum age');
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 300));
      const closing = await scrape(url);
      assert.equal(closing.value('wsproxy_relay_bytes_total{direction="up"}'), payload.length, 'the counter does not drop while the close is pending');
      assert.equal(closing.value('wsproxy_relays_active'), 1);
      assert.equal(closing.value('wsproxy_relays_ended_total'), 0);
      client.ws.terminate();
      const ended = await scrapeUntil(url, (s) => s.value('wsproxy_relays_ended_total') === 1, 'the end reported');
      assert.equal(ended.value('wsproxy_relay_bytes_total{direction="up"}'), payload.length);
      assert.equal(ended.value('wsproxy_relays_active'), 0);
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('the down bytes of a resumable relay', () => {
  test('count what reached the client, not what the target sent for a client that never came back', async () => {
    const payload = randomPayload(200_000);
    let sent!: () => void;
    const targetSent = new Promise<void>((r) => (sent = r));
    // Sends only once the client has gone: the proxy reads it into the replay buffer, and the window expires.
    const late = await startTarget((s) => setTimeout(() => s.write(payload, () => sent()), 300));
    const app = await startApp({ RESUME_WINDOW_S: '1' });
    const events = app.app.get(WsproxyEvents);
    const ends: { bytesDown: number; closeReason: string }[] = [];
    events.on('relay.closed', (e) => ends.push(e));
    try {
      const url = `${app.baseUrl}/metrics`;
      const { client } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${late.port}&resume=1`);
      (client.ws as unknown as { _socket: { resetAndDestroy(): void } })._socket.resetAndDestroy();
      await targetSent;
      const detached = await scrape(url);
      assert.equal(detached.value('wsproxy_relay_bytes_total{direction="down"}'), 0, 'nothing sent while detached');
      const ended = await scrapeUntil(url, (s) => s.value('wsproxy_relays_ended_total') === 1, 'the window to expire');
      assert.deepEqual(ends.map((e) => [e.closeReason, e.bytesDown]), [['resume window expired', 0]]);
      assert.equal(ended.value('wsproxy_relay_bytes_total{direction="down"}'), 0);
      assert.equal(client.bytes, 0);
    } finally {
      await app.close();
      await late.close();
    }
  });
});
